from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness import Process, Stack


@pytest.fixture(scope="session")
def basic_worker(stack: Stack, flows: object) -> Iterator[Process]:
    """One worker process (8 threads) serving the chain, diamond, failing and validated
    workflows."""
    proc = stack.start_worker("roost_testapps.flows:basic", processes=1, threads=8, name="basic")
    yield proc
    proc.stop()
