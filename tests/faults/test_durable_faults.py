"""Durable tasks under faults (issue #18): a durable task sleeping 5 s resumes once and
finishes after its scheduler is SIGKILLed and replaced mid-sleep, and after RabbitMQ
restarts mid-sleep; the ``ctx.step`` before its sleep runs exactly once each time. (A
worker SIGKILLed mid-sleep: tests/e2e/test_durable_sleep.py.) On the private servers
of the fault suite (tests/faults/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from faults.servers import Cluster

from harness import Process


@pytest.fixture
def sleeper(healthy: Cluster, flows: ModuleType) -> Iterator[Process]:
    """A one-slot worker serving the durable workflows."""
    proc = healthy.s.start_worker("roost_testapps.flows:sleeper", processes=1, threads=1)
    yield proc
    if proc.popen.poll() is None:
        proc.stop()


def _sleeps_through(
    cluster: Cluster, flows: ModuleType, tmp_path: Path, fault: Callable[[], None]
) -> None:
    marker = tmp_path / "marks"
    ref = flows.durable_sleep.run({"marker": str(marker), "seconds": 5}, wait_for_result=False)
    deadline = time.monotonic() + 30
    while cluster.s.sql("SELECT status FROM task_runs WHERE run_id = %s", ref.id) != [("WAITING",)]:
        assert time.monotonic() < deadline, "the durable task never began its sleep"
        time.sleep(0.1)

    fault()

    out = ref.result(timeout=90)["durable_nap"]
    assert out["attempt"] == 2  # resumed once
    assert out["woke"] - out["marked"]["t"] >= 5
    assert marker.read_text().splitlines() == ["step"]  # the step ran exactly once
    [task] = cluster.s.api_get(f"/api/v1/runs/{ref.id}")["tasks"]
    assert [a["status"] for a in task["attempts"]] == ["WAITING", "SUCCEEDED"]


def test_a_sleeping_durable_task_resumes_once_after_its_scheduler_is_killed_and_replaced(
    healthy: Cluster, flows: ModuleType, sleeper: Process, tmp_path: Path
) -> None:
    def kill_scheduler() -> None:
        old = healthy.scheduler
        assert old is not None
        healthy.kill(old.pid)
        healthy.forget(old)
        time.sleep(2)
        healthy.start_scheduler()

    _sleeps_through(healthy, flows, tmp_path, kill_scheduler)


def test_a_sleeping_durable_task_resumes_once_after_rabbitmq_restarts(
    healthy: Cluster, flows: ModuleType, sleeper: Process, tmp_path: Path
) -> None:
    _sleeps_through(healthy, flows, tmp_path, lambda: healthy.rabbit.restart(via="sigterm"))
