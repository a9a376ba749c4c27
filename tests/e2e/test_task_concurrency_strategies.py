"""Task-level concurrency strategies (issue #21), one attempt per user at a time:

* ``cancel_newest``: while a user's attempt runs, that user's new attempts end CANCELLED
  at once, their error naming the full key; their runs end CANCELLED, the task's
  descendant never starting, as with ``roost.runs.cancel_task``; another user's run is
  unaffected.
* ``cancel_in_progress``: a user's new attempt makes room: the running one is cancelled
  (interrupted on its worker) and the newest runs to success.

What is asserted is what a user sees through the SDK and HTTP: task and run statuses,
errors, and the keys' usage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

import roost
from harness import Process, Stack


@pytest.fixture(scope="module")
def strategy_worker(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    proc = stack.start_worker(
        "roost_testapps.flows:cc_strategies", processes=1, threads=8, name="cc-strategies"
    )
    yield proc
    proc.stop()


def _until(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _status(flows: ModuleType, run_id: str, task: str) -> roost.TaskStatus:
    return flows.roost.runs.get(run_id).task(task).status


def _key(stack: Stack, key: str) -> tuple[int, str]:
    """The key's units in use and what it does when full, as the api lists them."""
    limits = {r["key"]: r for r in stack.api_get("/api/v1/rate-limits")["rate_limits"]}
    return int(limits[key]["units_in_use"]), limits[key]["on_full"]


def test_cancel_newest_cancels_the_attempts_that_find_their_user_full(
    stack: Stack, flows: ModuleType, strategy_worker: Process, tmp_path: Path
) -> None:
    wf = flows.task_newest
    first = wf.run({"user": "u1", "folder": str(tmp_path)}, wait_for_result=False)
    _until(
        "u1's first attempt to run", lambda: _status(flows, first.id, "hold_newest") == "RUNNING"
    )

    extra = [
        wf.run({"user": "u1", "folder": str(tmp_path)}, wait_for_result=False) for _ in range(3)
    ]
    other = wf.run({"user": "u2", "folder": str(tmp_path)}, wait_for_result=False)
    key = "task-concurrency:t-task-newest:hold_newest:0:u1"
    for ref in extra:
        with pytest.raises(roost.RunCancelledError):
            ref.result(timeout=20)
        run = flows.roost.runs.get(ref.id)
        assert run.status == roost.RunStatus.CANCELLED
        task = run.task("hold_newest")
        assert task.status == roost.TaskStatus.CANCELLED
        assert task.started_at is None and task.attempt == 1  # never ran, never retried
        assert task.error is not None and task.error["type"] == "Cancelled"
        assert task.error["message"] == (
            f"task 'hold_newest' was cancelled: concurrency key {key!r} is full"
            " (1 of 1 running or waiting; cancel_newest)"
        )
        behind = run.task("after_newest")
        assert behind.status == roost.TaskStatus.CANCELLED and behind.started_at is None
    # Another user's attempt has its own key: it runs beside the first.
    _until("u2's attempt to run", lambda: _status(flows, other.id, "hold_newest") == "RUNNING")
    assert _status(flows, first.id, "hold_newest") == "RUNNING"
    assert _key(stack, key) == (1, "cancel_newest")

    (tmp_path / "release").touch()
    for ref in (first, other):
        assert ref.result(timeout=20)["after_newest"] == {"after": True}
    assert _key(stack, key) == (0, "cancel_newest")


def test_cancel_in_progress_cancels_the_running_attempt_and_the_newest_runs(
    stack: Stack, flows: ModuleType, strategy_worker: Process, tmp_path: Path
) -> None:
    wf = flows.task_latest
    inputs = {"user": "u1", "folder": str(tmp_path)}
    oldest = wf.run(inputs, wait_for_result=False)
    _until(
        "the oldest attempt to run", lambda: _status(flows, oldest.id, "hold_latest") == "RUNNING"
    )

    began = time.monotonic()
    middle = wf.run(inputs, wait_for_result=False)
    newest = wf.run(inputs, wait_for_result=False)
    key = "task-concurrency:t-task-latest:hold_latest:0:u1"
    for ref in (oldest, middle):  # the running one, and the one newest overtook
        with pytest.raises(roost.RunCancelledError):
            ref.result(timeout=20)
        task = flows.roost.runs.get(ref.id).task("hold_latest")
        assert task.status == roost.TaskStatus.CANCELLED and task.attempt == 1
        assert task.error is not None and task.error["type"] == "Cancelled"
        assert task.error["message"] == (
            "task 'hold_latest' was cancelled: a newer attempt took its place in"
            f" concurrency key {key!r} (at most 1; cancel_in_progress)"
        )
    assert time.monotonic() - began < 15  # interrupted, not left to its 60 s
    _until(
        "the newest attempt to run", lambda: _status(flows, newest.id, "hold_latest") == "RUNNING"
    )
    assert _key(stack, key) == (1, "cancel_in_progress")

    (tmp_path / "release").touch()
    assert newest.result(timeout=20)["hold_latest"] == {"user": "u1", "released": True}
    assert flows.roost.runs.get(newest.id).status == roost.RunStatus.SUCCEEDED
    assert _key(stack, key) == (0, "cancel_in_progress")
