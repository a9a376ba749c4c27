"""Durable tasks, first slice (issue #18): a durable task's step runs once, its sleep
gives back the worker's only slot (an ordinary task runs meanwhile), it shows WAITING,
and it resumes by replay after the sleep, also when its worker was SIGKILLed mid-sleep
and another one took over."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from harness import Process, Stack
from roost import RunFailedError


@pytest.fixture
def sleeper(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    """A worker process with one slot serving the durable and the quick workflows."""
    proc = stack.start_worker("roost_testapps.flows:sleeper", processes=1, threads=1)
    yield proc
    if proc.popen.poll() is None:
        proc.stop()


def _task(stack: Stack, run_id: str) -> dict[str, Any]:
    run = stack.api_get(f"/api/v1/runs/{run_id}")
    [task] = run["tasks"]
    return dict(task)


def _wait_for_status(stack: Stack, run_id: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _task(stack, run_id)["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"task of run {run_id} never {status}: {_task(stack, run_id)}")


def test_a_sleeping_durable_task_frees_its_slot_and_its_step_runs_once(
    stack: Stack, flows: ModuleType, sleeper: Process, tmp_path: Path
) -> None:
    marker = tmp_path / "marks"
    ref = flows.durable_sleep.run({"marker": str(marker), "seconds": 3}, wait_for_result=False)

    _wait_for_status(stack, ref.id, "WAITING")
    waiting = _task(stack, ref.id)["waiting"]
    assert waiting["reason"] == "sleep" and waiting["until"] > time.time()
    # The worker's only slot is free while the durable task sleeps.
    quick = flows.durable_quick.run({}, wait_for_result=False)
    assert quick.result(timeout=20)["quick_one"]["t"] > 0
    assert _task(stack, ref.id)["status"] == "WAITING"

    out = ref.result(timeout=30)["durable_nap"]
    assert marker.read_text().splitlines() == ["step"]  # the step ran once, not on replay
    assert out["woke"] - out["marked"]["t"] >= 3.0
    assert out["attempt"] == 2  # the resumed attempt
    task = _task(stack, ref.id)
    assert task["status"] == "SUCCEEDED"
    assert [a["status"] for a in task["attempts"]] == ["WAITING", "SUCCEEDED"]


def test_a_durable_task_resumes_on_another_worker_after_a_kill_mid_sleep(
    stack: Stack, flows: ModuleType, sleeper: Process, tmp_path: Path
) -> None:
    marker = tmp_path / "marks"
    ref = flows.durable_sleep.run({"marker": str(marker), "seconds": 4}, wait_for_result=False)
    _wait_for_status(stack, ref.id, "WAITING")

    os.killpg(sleeper.pid, signal.SIGKILL)  # the worker and its Dramatiq process
    sleeper.popen.wait(timeout=10)
    other = stack.start_worker("roost_testapps.flows:sleeper", processes=1, threads=1)
    try:
        out = ref.result(timeout=40)["durable_nap"]
    finally:
        other.stop()

    assert marker.read_text().splitlines() == ["step"]
    assert out["pid"] != out["marked"]["pid"]  # resumed in the other worker's process
    assert _task(stack, ref.id)["status"] == "SUCCEEDED"


def test_a_durable_task_waits_for_the_event_its_filter_picks(
    stack: Stack, flows: ModuleType, sleeper: Process, tmp_path: Path
) -> None:
    marker = tmp_path / "marks"
    key = f"ci:done-{tmp_path.name[-8:]}"
    ref = flows.durable_event.run(
        {"marker": str(marker), "key": key, "pr": 7, "timeout": 60}, wait_for_result=False
    )
    _wait_for_status(stack, ref.id, "WAITING")
    assert _task(stack, ref.id)["waiting"]["key"] == key

    flows.roost.events.push(key, {"pr": 8, "ok": False})  # another PR's: it waits on
    time.sleep(1.0)
    assert _task(stack, ref.id)["status"] == "WAITING"
    pushed = flows.roost.events.push(key, {"pr": 7, "ok": True})

    out = ref.result(timeout=30)["await_ci"]
    assert out["ci"] == {"pr": 7, "ok": True} and out["event_id"] == pushed.id
    assert marker.read_text().splitlines() == ["step"]


def test_a_wait_for_an_event_that_never_comes_times_out_inside_the_task(
    stack: Stack, flows: ModuleType, sleeper: Process, tmp_path: Path
) -> None:
    marker = tmp_path / "marks"
    ref = flows.durable_event.run(
        {"marker": str(marker), "key": "ci:never", "pr": 1, "timeout": 2},
        wait_for_result=False,
    )
    out = ref.result(timeout=30)["await_ci"]
    assert out["timed_out"] is True
    assert marker.read_text().splitlines() == ["step"]


def test_wait_for_any_returns_the_branch_that_fired_first_or_the_timer(
    stack: Stack, flows: ModuleType, sleeper: Process
) -> None:
    ci, closed = f"ci:{time.time_ns()}", f"closed:{time.time_ns()}"
    branches = {"ci": ci, "closed": closed, "pr": 9}
    ref = flows.durable_any.run({**branches, "sleep": 60}, wait_for_result=False)
    _wait_for_status(stack, ref.id, "WAITING")
    assert set(_task(stack, ref.id)["waiting"]["events"]) == {"ci", "closed"}
    flows.roost.events.push(ci, {"pr": 8})  # fails the ci branch's filter
    flows.roost.events.push(closed, {"why": "abandoned"})
    out = ref.result(timeout=30)["await_either"]
    assert out == {"fired": "closed", "data": {"why": "abandoned"}}

    quiet = flows.durable_any.run({**branches, "sleep": 2}, wait_for_result=False)
    assert quiet.result(timeout=30)["await_either"] == {"fired": "sleep", "data": None}


def test_a_replay_whose_durable_calls_differ_fails_naming_the_call(
    stack: Stack, flows: ModuleType, sleeper: Process
) -> None:
    ref = flows.durable_drift.run({}, wait_for_result=False)
    with pytest.raises(RunFailedError) as failed:
        ref.result(timeout=30)
    [task] = failed.value.run.tasks
    assert task.status == "FAILED" and task.error is not None
    assert task.error["type"] == "NonDeterminismError"
    message = task.error["message"]
    assert "durable call #0" in message
    assert "step 'open-pr'" in message and "step 'open-pull-request'" in message
    assert [a.status for a in task.attempts] == ["WAITING", "FAILED"]
