"""Cancelling one task (issue #20): from inside it (``ctx.cancel()``) or from outside
(``roost.runs.cancel_task``, HTTP, CLI). The task ends CANCELLED and is not retried, its
descendant never starts, the independent branch goes on, and the run ends CANCELLED."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import roost
from harness import Process, Stack


@pytest.fixture(scope="module")
def controlled_worker(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    proc = stack.start_worker(
        "roost_testapps.flows:controlled", processes=1, threads=8, name="controlled-cancel"
    )
    yield proc
    proc.stop()


def _until(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _ended_as_one_cancelled_task(run: roost.Run, reason: str) -> None:
    assert run.status == roost.RunStatus.CANCELLED
    gate = run.task("gate")
    assert gate.status == roost.TaskStatus.CANCELLED
    assert gate.error is not None and gate.error["type"] == "Cancelled"
    assert reason in gate.error["message"]
    behind = run.task("behind_gate")
    assert behind.status == roost.TaskStatus.CANCELLED and behind.started_at is None
    assert behind.error is not None and behind.error["type"] == "UpstreamCancelled"
    assert run.task("beside_gate").status == roost.TaskStatus.SUCCEEDED
    assert run.task("beside_gate").output == {"beside": True}
    assert run.error is not None and "gate" in run.error["message"]


def test_a_task_that_cancels_itself_ends_cancelled_without_retry(
    flows: ModuleType, controlled_worker: Process
) -> None:
    ref = flows.one_cancelled.run({"cancel": "nothing to do"}, wait_for_result=False)
    with pytest.raises(roost.RunCancelledError):
        ref.result(timeout=30)
    run = flows.roost.runs.get(ref.id)
    _ended_as_one_cancelled_task(run, "nothing to do")
    assert run.task("gate").attempt == 1  # retries=2, and none was used


def test_a_running_task_cancelled_from_outside_stops_and_the_others_go_on(
    stack: Stack, flows: ModuleType, controlled_worker: Process
) -> None:
    ref = flows.one_cancelled.run({"work": 30}, wait_for_result=False)
    _until(
        "gate to run",
        lambda: flows.roost.runs.get(ref.id).task("gate").status == roost.TaskStatus.RUNNING,
    )
    began = time.monotonic()
    assert flows.roost.runs.cancel_task(ref.id, "gate", "enough") == "CANCELLING"
    run = flows.roost.runs.wait(ref.id, timeout=30)
    assert time.monotonic() - began < 10  # interrupted, not left to its 30 s
    _ended_as_one_cancelled_task(run, "enough")
    # Ended: nothing more to cancel; an unknown task is named.
    with pytest.raises(roost.ConflictError):
        flows.roost.runs.cancel_task(ref.id, "beside_gate")
    with pytest.raises(roost.NotFoundError, match="no_such_task"):
        flows.roost.runs.cancel_task(ref.id, "no_such_task")


def test_a_pending_task_cancelled_never_starts_and_the_run_ends_cancelled(
    stack: Stack, flows: ModuleType, controlled_worker: Process, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    ref = flows.one_cancelled.run({"work": 60, "release": str(release)}, wait_for_result=False)
    _until(
        "gate to run",
        lambda: flows.roost.runs.get(ref.id).task("gate").status == roost.TaskStatus.RUNNING,
    )
    said = stack.roost("runs", "cancel", ref.id, "--task", "behind_gate", "--reason", "skip it")
    assert "CANCELLED" in said
    assert flows.roost.runs.get(ref.id).task("gate").status == roost.TaskStatus.RUNNING
    release.touch()  # the gate goes on, and finishes
    run = flows.roost.runs.wait(ref.id, timeout=30)
    assert run.status == roost.RunStatus.CANCELLED
    assert run.task("gate").status == roost.TaskStatus.SUCCEEDED  # went on, and finished
    behind = run.task("behind_gate")
    assert behind.status == roost.TaskStatus.CANCELLED and behind.started_at is None
    assert behind.error is not None and behind.error["message"] == "skip it"
    assert run.output == {"gate": {"gate": "passed"}, "beside_gate": {"beside": True}}
