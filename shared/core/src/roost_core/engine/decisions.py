"""What the engine decides, as pure functions: no SQL, no clock, no broker.

The processes that change runs (the scheduler, the api) read the facts from PostgreSQL,
ask these functions what follows, and write the answer in the same transaction. Kept
apart so that every branch can be tested directly (tests/unit/test_decisions.py) and the
whole state machine exercised on random DAGs (tests/unit/test_run_properties.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from roost_core.statuses import RunStatus, TaskStatus
from roost_core.wire import TaskDefinition

# An attempt whose worker was lost goes to another worker without using a retry, at
# most this many times: a task that kills its workers must not loop forever.
MAX_LOST = 5
WORKER_LOST = "WorkerLost"  # the error type of an attempt lost with its worker
FAILURES = frozenset({TaskStatus.FAILED, TaskStatus.TIMED_OUT})


# -- a failed attempt: retry, or fail the task ------------------------------------------


@dataclass(frozen=True)
class Retry:
    """Run the task again, as attempt n + 1, after ``delay`` seconds."""

    delay: float


def after_failure(
    task: TaskDefinition, *, failures: int, losses: int, lost: bool, retryable: bool
) -> Retry | None:
    """Whether a task whose attempt just ended badly runs again, and when; None: the
    task has failed for good.

    ``failures``: its attempts since its retry base (a replay resets it) that failed,
    this one included; ``losses``: those lost with their worker, this one included.
    A lost attempt goes to another worker at once and uses no retry (up to MAX_LOST);
    any other failure is retried after its backoff while retries remain, unless the
    error says retrying is pointless (NonRetryableError, a schedule timeout)."""
    if lost:
        return Retry(0.0) if losses <= MAX_LOST else None
    if retryable and failures <= task.retries:
        return Retry(task.retry_delay(failures))
    return None


# -- a run whose every task has settled --------------------------------------------------


@dataclass(frozen=True)
class SettledTask:
    """A task of a run that has no task left to settle."""

    name: str
    status: TaskStatus
    output: Any = None
    error: Any = None


@dataclass(frozen=True)
class RunEnds:
    """The run ends in ``status`` with every succeeded task's output, and for a failed
    run an error listing every failed task."""

    status: RunStatus
    output: dict[str, Any]
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class StartOnFailure:
    """The run failed and its on_failure handler has not run: start it, with the errors
    of the tasks that failed; the run ends once the handler has settled."""

    errors: dict[str, Any] = field(default_factory=dict)


def run_end(tasks: Sequence[SettledTask], on_failure: str | None) -> RunEnds | StartOnFailure:
    """What follows once every task of a run has settled. A task that timed out has
    failed too (its status says how); a task cancelled because an upstream task failed
    does not count as failed itself. With no failure, a run with a cancelled task (one
    cancelled on its own, ctx.cancel or runs.cancel_task, and its descendants) ends
    CANCELLED: it did not do all its work, and nothing went wrong."""
    failed = sorted(((t.name, t.error) for t in tasks if t.status in FAILURES), key=_first)
    if failed and on_failure is not None and all(t.name != on_failure for t in tasks):
        return StartOnFailure({name: error or {} for name, error in failed})
    output = {t.name: t.output for t in tasks if t.status == TaskStatus.SUCCEEDED}
    if not failed:
        cancelled = sorted(
            ((t.name, t.error) for t in tasks if t.status == TaskStatus.CANCELLED), key=_first
        )
        if cancelled:
            return RunEnds(
                RunStatus.CANCELLED,
                output,
                {
                    "type": "Cancelled",
                    "message": f"task(s) cancelled: {', '.join(n for n, _ in cancelled)}",
                    "cancelled_tasks": [{"task": n, **(e or {})} for n, e in cancelled],
                },
            )
        return RunEnds(RunStatus.SUCCEEDED, output)
    error = {
        "message": f"task(s) failed: {', '.join(name for name, _ in failed)}",
        "failed_tasks": [{"task": name, **(err or {})} for name, err in failed],
    }
    return RunEnds(RunStatus.FAILED, output, error)


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


# -- a task that succeeded: which children are ready --------------------------------------


def ready_children(
    tasks: Iterable[TaskDefinition], succeeded: set[str], finished: Iterable[str]
) -> list[str]:
    """The tasks that become ready now that ``finished`` have succeeded: every parent
    of theirs is in ``succeeded`` (which includes ``finished``), and one of them is in
    ``finished`` (so a child is made ready exactly once). The scheduler applies this
    rule set-wise, in one statement for a whole batch (a pending-parents count per task
    run, in roost_core.engine.reports); this is its statement for tests and readers."""
    just = set(finished)
    return [
        t.name
        for t in tasks
        if t.parents and just.intersection(t.parents) and succeeded.issuperset(t.parents)
    ]
