"""A failed, timed-out or lost attempt: recorded once, then retried or the task failed
for good (its descendants never start). decisions.after_failure decides which."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from roost_core import dag, events, outbox
from roost_core.engine import decisions
from roost_core.engine.decisions import WORKER_LOST
from roost_core.engine.ready import fire_dispatches
from roost_core.engine.reports_started import started_data
from roost_core.engine.state import ACTIVE, Conn, Definitions, RunState
from roost_core.queries import SQL
from roost_core.statuses import TaskStatus
from roost_core.topology import Topology

_END_ATTEMPT = SQL.end_failed_attempt
_RECORD_ATTEMPT = SQL.record_failed_attempt
_COUNT_FAILURES = SQL.count_failures
_RETRY = SQL.schedule_retry
_CANCEL_DESCENDANTS = SQL.cancel_descendants


def fail_attempt(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    run: RunState,
    out: list[outbox.OutboxMessage],
    *,
    task_run_id: str,
    task: str,
    attempt: int,
    error: dict[str, Any],
    worker_id: str | None,
    started_at: float | None,
    finished_at: float | None,
    retryable: bool,
    timed_out: bool,
    lost: bool = False,
    cancelled: bool = False,
) -> bool:
    """End a failed (or timed-out) attempt, once, and either schedule the next attempt
    (retries left, and the error allows it) or fail the task for good, cancelling its
    descendants. An attempt ``lost`` with its worker is handed to another worker at once
    without using a retry (decisions.after_failure decides). A ``cancelled`` one (the
    task cancelled on its own) ends CANCELLED, never retried; its descendants too.
    Returns False when the attempt was not the current active one."""
    if cancelled:
        status = TaskStatus.CANCELLED
    else:
        status = TaskStatus.TIMED_OUT if timed_out else TaskStatus.FAILED
    row = conn.execute(
        _END_ATTEMPT,
        {
            "status": status,
            "error": Jsonb(error),
            "worker_id": worker_id,
            "started_at": started_at,
            "finished_at": finished_at,
            "task_run_id": task_run_id,
            "attempt": attempt,
            # A durable task WAITING can be cancelled on its own (cancel_task) too.
            "statuses": [*ACTIVE, TaskStatus.WAITING] if cancelled else ACTIVE,
        },
    ).fetchone()
    if row is None:
        return False
    task_def = definitions.get(conn, run.version_id).by_name[task]
    if task_def.admitted:
        run.released.append((task_run_id, attempt))  # this attempt is over: units come back
    if row[4] == TaskStatus.QUEUED and started_at is not None:
        queued = row[0].timestamp() if row[0] is not None else None
        run.event(
            events.TASK_STARTED,
            task,
            attempt,
            started_data(worker_id, started_at, queued),
            started_at,
        )
    conn.execute(
        _RECORD_ATTEMPT,
        {
            "task_run_id": task_run_id,
            "attempt": attempt,
            "status": status,
            "worker_id": row[3],
            "error": Jsonb(error),
            "queued_at": row[0],
            "started_at": row[1],
            "finished_at": row[2],
            "placement": Jsonb(row[5]) if row[5] is not None else None,
        },
    )
    row = conn.execute(
        _COUNT_FAILURES, {"worker_lost": WORKER_LOST, "task_run_id": task_run_id}
    ).fetchone()
    failures, losses = (row[0], row[1]) if row else (1, 0)
    retry = None
    if not cancelled:
        retry = decisions.after_failure(
            task_def, failures=failures, losses=losses, lost=lost, retryable=retryable
        )
    if retry is not None:
        delay = retry.delay
        run.event(
            events.TASK_RETRYING,
            task,
            attempt,
            {"error": error, "next_attempt": attempt + 1, "delay": delay},
        )
        # The next attempt waits out its backoff as a durable timer (dispatch_at): a
        # scheduler restarted meanwhile still sends it on time. The last error stays
        # visible on the task until then.
        conn.execute(
            _RETRY,
            {
                "queued": TaskStatus.QUEUED,
                "attempt": attempt + 1,
                "delay": delay,
                "task_run_id": task_run_id,
            },
        )
        if delay <= 0:
            fire_dispatches(conn, topology, definitions, {run.id: run}, out, [task_run_id])
        return True
    run.settled += 1
    if cancelled:
        kind, why = events.TASK_CANCELLED, ("UpstreamCancelled", "was cancelled")
    else:
        kind = events.TASK_TIMED_OUT if timed_out else events.TASK_FAILED
        why = ("UpstreamFailed", "failed")
    run.event(kind, task, attempt, {"error": error})
    # Descendants of a failed task never start; independent branches go on.
    cancel_descendants(conn, definitions, run, task, why)
    return True


def cancel_descendants(
    conn: Conn, definitions: Definitions, run: RunState, task: str, why: tuple[str, str]
) -> None:
    """The pending descendants of ``task``, which failed or was cancelled for good, never
    start: each ends CANCELLED with the error ``why`` (type, what befell ``task``)."""
    doomed = dag.descendants(definitions.get(conn, run.version_id), [task])
    if doomed:
        upstream = {"type": why[0], "message": f"not run: upstream task {task!r} {why[1]}"}
        cancelled = conn.execute(
            _CANCEL_DESCENDANTS,
            {
                "cancelled": TaskStatus.CANCELLED,
                "error": Jsonb(upstream),
                "run_id": run.id,
                "tasks": sorted(doomed),
                "pending": TaskStatus.PENDING,
            },
        ).fetchall()
        run.settled += len(cancelled)
        for (name,) in sorted(cancelled):
            run.event(events.TASK_CANCELLED, name, None, {"error": upstream})


def engine_fail(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    run: RunState,
    out: list[outbox.OutboxMessage],
    row: tuple[Any, Any, str, int],
    error: dict[str, Any],
    *,
    retryable: bool,
    timed_out: bool,
    lost: bool = False,
    cancelled: bool = False,
) -> bool:
    """fail_attempt for an attempt the engine ends itself (no worker report): ``row`` is
    (task run id, run id, task name, attempt)."""
    task_run_id, _, name, attempt = row
    return fail_attempt(
        conn,
        topology,
        definitions,
        run,
        out,
        task_run_id=str(task_run_id),
        task=name,
        attempt=attempt,
        error=error,
        worker_id=None,
        started_at=None,
        finished_at=None,
        retryable=retryable,
        timed_out=timed_out,
        lost=lost,
        cancelled=cancelled,
    )
