"""Every branch of the engine's decisions (roost_core.engine.decisions)."""

from __future__ import annotations

import pytest

from roost_core.engine.decisions import (
    MAX_LOST,
    Retry,
    RunEnds,
    SettledTask,
    StartOnFailure,
    after_failure,
    ready_children,
    run_end,
)
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.wire import TaskDefinition

S, F, T, C = TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.TIMED_OUT, TaskStatus.CANCELLED


def _task(name: str = "t", parents: list[str] | None = None, **policy: object) -> TaskDefinition:
    return TaskDefinition.model_validate({"name": name, "parents": parents or [], **policy})


# -- after_failure -------------------------------------------------------------------------


def test_a_retryable_failure_with_retries_left_runs_again_after_its_backoff() -> None:
    task = _task(retries=3, backoff_initial_seconds=1.0, backoff_factor=2.0)
    assert after_failure(task, failures=1, losses=0, lost=False, retryable=True) == Retry(1.0)
    assert after_failure(task, failures=3, losses=0, lost=False, retryable=True) == Retry(4.0)


def test_the_backoff_is_capped() -> None:
    task = _task(retries=9, backoff_initial_seconds=1.0, backoff_factor=10.0,
                 backoff_max_seconds=30)  # fmt: skip
    assert after_failure(task, failures=5, losses=0, lost=False, retryable=True) == Retry(30)


def test_a_failure_past_the_last_retry_fails_the_task() -> None:
    task = _task(retries=2)
    assert after_failure(task, failures=3, losses=0, lost=False, retryable=True) is None


def test_a_task_without_retries_fails_at_its_first_failure() -> None:
    assert after_failure(_task(), failures=1, losses=0, lost=False, retryable=True) is None


def test_a_non_retryable_failure_fails_the_task_whatever_retries_remain() -> None:
    task = _task(retries=5)
    assert after_failure(task, failures=1, losses=0, lost=False, retryable=False) is None


def test_a_lost_attempt_goes_to_another_worker_at_once_without_using_a_retry() -> None:
    task = _task(retries=0, backoff_initial_seconds=7.0)
    assert after_failure(task, failures=0, losses=1, lost=True, retryable=True) == Retry(0.0)
    # ...even when the lost attempt came after the retries were used up.
    assert after_failure(task, failures=4, losses=1, lost=True, retryable=False) == Retry(0.0)


def test_a_task_that_keeps_losing_its_workers_fails_after_max_lost() -> None:
    task = _task(retries=3)
    assert after_failure(task, failures=0, losses=MAX_LOST, lost=True, retryable=True)
    assert after_failure(task, failures=0, losses=MAX_LOST + 1, lost=True, retryable=True) is None


# -- run_end -------------------------------------------------------------------------------


def test_a_run_whose_tasks_all_succeeded_succeeds_with_every_output() -> None:
    end = run_end([SettledTask("a", S, {"x": 1}), SettledTask("b", S, [2])], on_failure=None)
    assert end == RunEnds(RunStatus.SUCCEEDED, {"a": {"x": 1}, "b": [2]}, None)


def test_a_failed_run_lists_every_failed_and_timed_out_task_and_keeps_the_outputs() -> None:
    end = run_end(
        [
            SettledTask("z", F, error={"type": "ValueError", "message": "bad"}),
            SettledTask("a", T, error={"type": "ExecutionTimeout", "message": "slow"}),
            SettledTask("ok", S, {"kept": True}),
            SettledTask("child", C, error={"type": "UpstreamFailed", "message": "not run"}),
        ],
        on_failure=None,
    )
    assert isinstance(end, RunEnds)
    assert end.status == RunStatus.FAILED
    assert end.output == {"ok": {"kept": True}}
    assert end.error == {
        "message": "task(s) failed: a, z",
        "failed_tasks": [
            {"task": "a", "type": "ExecutionTimeout", "message": "slow"},
            {"task": "z", "type": "ValueError", "message": "bad"},
        ],
    }


def test_a_run_with_a_cancelled_task_and_no_failure_ends_cancelled_keeping_outputs() -> None:
    end = run_end(
        [
            SettledTask("gate", C, error={"type": "Cancelled", "message": "enough"}),
            SettledTask("behind", C, error={"type": "UpstreamCancelled", "message": "not run"}),
            SettledTask("beside", S, {"beside": True}),
        ],
        on_failure="cleanup",  # nothing failed: no handler
    )
    assert end == RunEnds(
        RunStatus.CANCELLED,
        {"beside": {"beside": True}},
        {
            "type": "Cancelled",
            "message": "task(s) cancelled: behind, gate",
            "cancelled_tasks": [
                {"task": "behind", "type": "UpstreamCancelled", "message": "not run"},
                {"task": "gate", "type": "Cancelled", "message": "enough"},
            ],
        },
    )
    # A failure still makes it FAILED, whatever was cancelled.
    failed = run_end([SettledTask("gate", C, error={}), SettledTask("x", F, error={})], None)
    assert isinstance(failed, RunEnds) and failed.status == RunStatus.FAILED


def test_a_failed_run_with_a_handler_not_yet_run_starts_it_with_the_errors() -> None:
    tasks = [SettledTask("a", F, error={"message": "boom"}), SettledTask("b", T, error=None)]
    assert run_end(tasks, on_failure="cleanup") == StartOnFailure(
        {"a": {"message": "boom"}, "b": {}}
    )


def test_once_its_handler_has_run_a_failed_run_ends_failed() -> None:
    tasks = [SettledTask("a", F, error={"message": "boom"}), SettledTask("cleanup", S, "done")]
    end = run_end(tasks, on_failure="cleanup")
    assert isinstance(end, RunEnds)
    assert end.status == RunStatus.FAILED
    assert end.output == {"cleanup": "done"}


def test_a_failing_handler_is_listed_with_the_failed_tasks_and_not_started_again() -> None:
    tasks = [SettledTask("a", F, error={}), SettledTask("cleanup", F, error={"message": "x"})]
    end = run_end(tasks, on_failure="cleanup")
    assert isinstance(end, RunEnds)
    assert [t["task"] for t in (end.error or {})["failed_tasks"]] == ["a", "cleanup"]


def test_a_succeeded_run_never_starts_its_failure_handler() -> None:
    end = run_end([SettledTask("a", S, 1)], on_failure="cleanup")
    assert isinstance(end, RunEnds) and end.status == RunStatus.SUCCEEDED


# -- ready_children ------------------------------------------------------------------------


DIAMOND = [
    _task("start"),
    _task("left", ["start"]),
    _task("right", ["start"]),
    _task("join", ["left", "right"]),
]


@pytest.mark.parametrize(
    ("succeeded", "finished", "ready"),
    [
        ({"start"}, ["start"], ["left", "right"]),
        ({"start", "left"}, ["left"], []),  # join still waits for right
        ({"start", "left", "right"}, ["right"], ["join"]),
        ({"start", "left", "right"}, ["left", "right"], ["join"]),  # once, not twice
        ({"start", "left", "right", "join"}, ["join"], []),
    ],
)
def test_a_child_is_ready_once_when_its_last_parent_succeeds(
    succeeded: set[str], finished: list[str], ready: list[str]
) -> None:
    assert ready_children(DIAMOND, succeeded, finished) == ready


def test_roots_are_never_made_ready_by_a_parent() -> None:
    assert ready_children(DIAMOND, {"start"}, ["start"]) == ["left", "right"]
    assert "start" not in ready_children(DIAMOND, {"start", "left"}, ["left", "start"])
