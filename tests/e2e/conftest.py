from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chromium import launch
from playwright.sync_api import sync_playwright

from harness import Process, Stack


@pytest.fixture(scope="session")
def basic_worker(stack: Stack, flows: object) -> Iterator[Process]:
    """One worker process (8 threads) serving the chain, diamond, failing and validated
    workflows."""
    proc = stack.start_worker("roost_testapps.flows:basic", processes=1, threads=8, name="basic")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, one per test module (tests/chromium.py)."""
    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()
