"""Retries with backoff, non-retryable errors, execution and schedule timeouts."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import roost
from harness import Process, Stack

# Timers are looked for every 0.2 s and a retry crosses the broker once: a retry may
# start up to this much later than its backoff says, never earlier.
LATE = 0.6


@pytest.fixture(scope="module")
def reliable_worker(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    proc = stack.start_worker(
        "roost_testapps.flows:reliable", processes=1, threads=8, name="reliable"
    )
    yield proc
    proc.stop()


def test_a_failing_task_is_retried_with_backoff_and_every_attempt_is_recorded(
    flows: ModuleType, reliable_worker: Process
) -> None:
    ref = flows.flaky.run({"succeed_on": 3}, wait_for_result=False)
    result = ref.result(timeout=60)

    assert result["sometimes"] == {"attempt": 3, "retry_count": 2}
    assert result["after_sometimes"] == {"saw": 3}
    task = flows.roost.runs.get(ref.id).task("sometimes")
    assert task.status == roost.TaskStatus.SUCCEEDED and task.attempt == 3
    assert [a.attempt for a in task.attempts] == [1, 2, 3]
    assert [a.status for a in task.attempts] == ["FAILED", "FAILED", "SUCCEEDED"]
    for a, n in zip(task.attempts[:2], (1, 2), strict=True):
        assert a.error is not None and a.error["type"] == "RuntimeError"
        assert a.error["message"] == f"attempt {n} fails"
        assert "Traceback" in a.error["traceback"]
    # Backoff: 0.3 s after the first failure, then 0.6 s (factor 2).
    for before, after, delay in (
        (task.attempts[0], task.attempts[1], 0.3),
        (task.attempts[1], task.attempts[2], 0.6),
    ):
        assert before.finished_at and after.started_at
        waited = (after.started_at - before.finished_at).total_seconds()
        assert delay <= waited <= delay + LATE, (delay, waited)


def test_a_non_retryable_error_fails_at_once(flows: ModuleType, reliable_worker: Process) -> None:
    with pytest.raises(roost.RunFailedError, match="refuse") as caught:
        flows.refusing.run({}, timeout=60)
    task = caught.value.run.task("refuse")
    assert task.status == roost.TaskStatus.FAILED
    assert len(task.attempts) == 1
    assert task.error is not None and task.error["type"] == "NonRetryableError"
    assert task.error["message"] == "bad credentials"


def test_a_task_that_keeps_failing_stops_after_its_retries(
    flows: ModuleType, reliable_worker: Process
) -> None:
    with pytest.raises(roost.RunFailedError) as caught:
        flows.exhausting.run({}, timeout=60)
    task = caught.value.run.task("always_fails")
    assert task.status == roost.TaskStatus.FAILED
    assert [a.attempt for a in task.attempts] == [1, 2, 3]  # retries=2: three attempts
    assert [a.error["message"] for a in task.attempts if a.error] == [
        f"no luck on attempt {n}" for n in (1, 2, 3)
    ]


def test_a_sync_task_past_its_execution_timeout_is_interrupted_and_retried(
    flows: ModuleType, reliable_worker: Process, tmp_path: Path
) -> None:
    began = time.monotonic()
    with pytest.raises(roost.RunFailedError) as caught:
        flows.hanging.run({"marker_dir": str(tmp_path), "sleep": 8}, timeout=60)
    took = time.monotonic() - began

    task = caught.value.run.task("hang")
    assert task.status == roost.TaskStatus.TIMED_OUT
    assert [a.status for a in task.attempts] == ["TIMED_OUT", "TIMED_OUT"]
    assert all(a.error and a.error["type"] == "ExecutionTimeout" for a in task.attempts)
    assert took < 8, "the attempts were interrupted, not left to sleep"
    time.sleep(0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sync-1.started", "sync-2.started"]


def test_an_async_task_past_its_execution_timeout_is_cancelled(
    flows: ModuleType, reliable_worker: Process, tmp_path: Path
) -> None:
    with pytest.raises(roost.RunFailedError) as caught:
        flows.hanging_async.run({"marker_dir": str(tmp_path), "sleep": 8}, timeout=60)
    task = caught.value.run.task("hang_async")
    assert task.status == roost.TaskStatus.TIMED_OUT
    assert task.error is not None and task.error["type"] == "ExecutionTimeout"
    assert [p.name for p in tmp_path.iterdir()] == ["async.started"]


def test_a_task_no_worker_starts_in_time_ends_timed_out(flows: ModuleType, stack: Stack) -> None:
    began = time.monotonic()
    with pytest.raises(roost.RunFailedError) as caught:
        flows.unserved.run({}, timeout=30)
    took = time.monotonic() - began

    task = caught.value.run.task("never_picked_up")
    assert task.status == roost.TaskStatus.TIMED_OUT
    assert task.error is not None and task.error["type"] == "ScheduleTimeout"
    assert task.started_at is None
    assert 1.0 <= took <= 1.0 + 2.0


def test_a_retry_timer_survives_a_scheduler_killed_during_the_backoff(
    stack: Stack, flows: ModuleType, reliable_worker: Process
) -> None:
    ref = flows.durable.run({}, wait_for_result=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if flows.roost.runs.get(ref.id).task("fails_once").attempt == 2:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the first attempt never failed")

    # Kill every scheduler mid-backoff, then start a fresh one.
    for proc in [p for p in stack.processes if p.name.startswith("scheduler")]:
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(10)
        stack.processes.remove(proc)
    time.sleep(1.0)
    restarted = stack.spawn("scheduler-restarted", "scheduler")
    # When the new scheduler is up (on a busy machine, starting takes seconds).
    deadline = time.monotonic() + 30
    while "scheduler consuming" not in restarted.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, restarted.tail()
        time.sleep(0.05)
    ready_at = time.time()

    result = ref.result(timeout=60)
    task = flows.roost.runs.get(ref.id).task("fails_once")
    first = task.attempts[0]
    assert result["fails_once"]["attempt"] == 2
    assert first.finished_at is not None and task.started_at is not None
    waited = (task.started_at - first.finished_at).total_seconds()
    assert waited >= 4.0, waited  # the backoff was kept: never early
    # And the retry went out once it was due, or at once when the new scheduler came up
    # after that (its timer is in PostgreSQL, not in the killed process).
    due = max(first.finished_at.timestamp() + 4.0, ready_at)
    assert task.started_at.timestamp() <= due + LATE + 1.0, (waited, ready_at)


def test_the_engine_times_out_an_attempt_the_worker_cannot_interrupt_and_discards_its_late_result(
    flows: ModuleType, reliable_worker: Process
) -> None:
    began = time.monotonic()
    with pytest.raises(roost.RunFailedError) as caught:
        flows.stuck.run({"sleep": 9}, timeout=60)
    took = time.monotonic() - began

    # Timeout 1 s + the engine's 5 s grace, well before the task's 9 s sleep ends.
    assert 6.0 <= took <= 8.5, took
    task = caught.value.run.task("stuck_in_c")
    assert task.status == roost.TaskStatus.TIMED_OUT
    assert task.error is not None and "did not finish within" in task.error["message"]

    time.sleep(max(0.0, 9.5 - (time.monotonic() - began)))  # the worker reports now, late
    run = flows.roost.runs.get(caught.value.run.id)
    assert run.status == roost.RunStatus.FAILED
    assert run.task("stuck_in_c").status == roost.TaskStatus.TIMED_OUT
    assert run.task("stuck_in_c").output is None
    assert len(run.task("stuck_in_c").attempts) == 1


def test_a_task_that_refreshes_its_timeout_runs_past_it_and_the_engine_agrees(
    stack: Stack, flows: ModuleType, reliable_worker: Process
) -> None:
    # Timeout 1 s; the engine's own deadline is 1 s + its 5 s grace. The long session
    # asks for 10 s and works 7 s: past both, so both must have moved.
    long = flows.refreshing.run({"refresh": "10s", "work": 7}, wait_for_result=False)
    short = flows.refreshing.run({"work": 3}, wait_for_result=False)
    assert long.result(timeout=60) == {"long_session": {"worked": 7}}
    with pytest.raises(roost.RunFailedError) as caught:
        short.result(timeout=60)
    error = caught.value.run.task("long_session").error
    assert error is not None and error["type"] == "ExecutionTimeout"
    (row,) = stack.sql(
        "SELECT data FROM events WHERE run_id = %s AND type = 'task.deadline'", long.id
    )
    data = row[0]
    assert isinstance(data, dict) and data["seconds"] == 10.0
    assert not stack.sql(
        "SELECT 1 FROM events WHERE run_id = %s AND type = 'task.deadline'", short.id
    )
