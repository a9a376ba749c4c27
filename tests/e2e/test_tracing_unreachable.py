"""An OTLP endpoint that never answers slows nothing and loses no run: spans are
exported from a background thread with a bounded queue, and Roost's own span store
still holds every run's trace."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness import Stack

RUNS = 20


@pytest.fixture(scope="module")
def blackholed_stack(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose every process exports to an endpoint that accepts connections and
    never answers (the worst case: each export waits for its timeout)."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(512)
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{hole.getsockname()[1]}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    blackholed = Stack(Path(tmp_path_factory.mktemp("blackholed")), extra_env=otel)
    try:
        blackholed.start()
        blackholed.start_worker("roost_testapps.flows:stored_worker", threads=4, name="stored")
        yield blackholed
    finally:
        blackholed.stop()
        hole.close()


def test_an_unreachable_otlp_endpoint_slows_nothing_and_loses_no_run(
    blackholed_stack: Stack,
) -> None:
    stack = blackholed_stack
    headers = {"Authorization": f"Bearer {stack.token}"}
    run_ids = []
    for _ in range(RUNS):
        resp = httpx.post(
            f"{stack.api_url}/api/v1/workflows/t-stored/runs",
            json={"input": {}},
            headers=headers,
            timeout=5,  # a trigger never waits on the exporter
        )
        assert resp.status_code == 201, resp.text
        run_ids.append(resp.json()["id"])
    deadline = time.monotonic() + 60
    while True:
        rows = stack.sql(
            "SELECT status, extract(epoch FROM finished_at - created_at)::float8 FROM runs"
            " WHERE id = ANY(%s::uuid[])",
            run_ids,
        )
        if len(rows) == RUNS and all(r[0] == "SUCCEEDED" for r in rows):
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    # The exporter's timeout is 10 s: a run that had waited on it would show it.
    slowest = max(float(r[1]) for r in rows)  # type: ignore[arg-type]
    assert slowest < 5.0, f"a run took {slowest:.1f} s"
    # Roost's own span store does not depend on the collector: every trace is whole.
    for run_id in run_ids:
        deadline = time.monotonic() + 20
        while True:
            trace = httpx.get(
                f"{stack.api_url}/api/v1/runs/{run_id}/trace", headers=headers, timeout=10
            ).json()
            if any(s["name"] == "complete t-stored" for s in trace["spans"]):
                break
            assert time.monotonic() < deadline, trace
            time.sleep(0.2)
