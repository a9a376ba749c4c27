"""A waiting durable task holds no place in its workflow's concurrency group (issue #18):
with a group of one, another run of the group runs while it waits, and it takes the place
again, in its turn, before it resumes (so two runs of the group never run at once)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType

import pytest

from harness import Process, Stack


@pytest.fixture
def grouped(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    """A worker process with four slots serving the grouped durable workflow."""
    proc = stack.start_worker("roost_testapps.flows:grouped", processes=1, threads=4)
    yield proc
    proc.stop()


def _status(stack: Stack, run_id: str) -> str:
    [task] = stack.api_get(f"/api/v1/runs/{run_id}")["tasks"]
    return str(task["status"])


def test_a_waiting_run_lets_another_of_its_group_run_and_waits_its_turn_to_resume(
    stack: Stack, flows: ModuleType, grouped: Process
) -> None:
    group = f"g-{time.time_ns()}"
    waiter = flows.durable_group.run({"group": group, "sleep": 2}, wait_for_result=False)
    deadline = time.monotonic() + 30
    while _status(stack, waiter.id) != "WAITING":
        assert time.monotonic() < deadline, "the durable task never waited"
        time.sleep(0.05)

    # The group's only place is free while the first run waits: this one starts now,
    # and stays busy past the first one's wake time.
    busy = flows.durable_group.run({"group": group, "busy": 4}, wait_for_result=False)
    other = busy.result(timeout=30)["hold_group"]
    first = waiter.result(timeout=30)["hold_group"]

    assert other["started"] < first["started"] + 2, "the second run waited for the first"
    # The first one's sleep was over before the second ended, yet it resumed only after:
    # it took the place again, in its turn.
    assert first["started"] + 2 < other["ended"]
    assert first["resumed"] >= other["ended"]
    run = stack.api_get(f"/api/v1/runs/{waiter.id}")
    assert [a["status"] for a in run["tasks"][0]["attempts"]] == ["WAITING", "SUCCEEDED"]
