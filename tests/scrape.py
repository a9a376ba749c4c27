"""Reading the api's Prometheus metrics in tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def histogram_totals(api_url: str, name: str) -> tuple[float, float]:
    """Histogram ``name`` as the api reports it now: (observations, their sum)."""
    text = httpx.get(f"{api_url}/metrics", timeout=10).text
    found = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name == name
    }
    return found.get(f"{name}_count", 0.0), found.get(f"{name}_sum", 0.0)
