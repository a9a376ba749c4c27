"""Timers: retries whose backoff is over, deadlines passed, and workers gone silent."""

from __future__ import annotations

from typing import NamedTuple

from roost_core import outbox
from roost_core.engine.batch import close_batch
from roost_core.engine.decisions import WORKER_LOST
from roost_core.engine.failures import engine_fail
from roost_core.engine.placement import STICKY_WORKER_GONE
from roost_core.engine.ready import fire_dispatches
from roost_core.engine.state import ACTIVE, BatchOutcome, Conn, Definitions, lock_runs
from roost_core.queries import SQL
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.topology import Topology

_DUE = SQL.runs_with_due_timers
_WORK_DUE = SQL.due_work
_CLEAR_TIMERS = SQL.clear_timers
_EXPIRED = SQL.expired_attempts


class WorkDue(NamedTuple):
    """What the scheduler's tick has to do (``work_due``)."""

    timers: bool  # a retry, a wait's end or a deadline is due
    schedules: bool  # a cron or a scheduled run is due (roost_core.engine.fire)
    events: bool  # an event wait has an event to judge (roost_core.engine.event_waits)
    children: bool  # a child run a durable task waits for has ended (engine.child_waits)


def work_due(conn: Conn) -> WorkDue:
    """What is due now: one cheap read, so that an idle scheduler, which looks five
    times a second, opens no transaction (issue #17's idle target)."""
    row = conn.execute(_WORK_DUE).fetchone()
    if row is None:
        return WorkDue(False, False, False, False)
    return WorkDue(*(bool(v) for v in row))


def attempts_lost(conn: Conn, timeout: float) -> bool:
    """Whether any RUNNING attempt's worker has been silent for ``timeout`` seconds."""
    found = conn.execute(_LOST_RUNS, {"running": TaskStatus.RUNNING, "timeout": timeout})
    return found.fetchone() is not None


def fire_timers(conn: Conn, topology: Topology, definitions: Definitions) -> BatchOutcome:
    """Fire every due timer, inside the caller's transaction: retries whose backoff is
    over are sent; QUEUED attempts past their schedule deadline end TIMED_OUT; RUNNING
    attempts past their execution deadline (the worker did not report in time) time out
    and are retried like any failure. Runs are locked first, as for reports."""
    due = conn.execute(_DUE).fetchall()
    if not due:
        return BatchOutcome([], [], 0, 0)
    runs = lock_runs(conn, sorted({str(r[0]) for r in due}))
    ended = [r.id for r in runs.values() if RunStatus(r.status).is_final]
    if ended:  # a cancelled run keeps no timers
        conn.execute(_CLEAR_TIMERS, {"run_ids": ended})
    live = {k: r for k, r in runs.items() if not RunStatus(r.status).is_final}
    out: list[outbox.OutboxMessage] = []
    fired = fire_dispatches(conn, topology, definitions, live, out) if live else 0
    expired = (
        conn.execute(_EXPIRED, {"run_ids": list(live), "statuses": ACTIVE}).fetchall()
        if live
        else []
    )
    for task_run_id, run_id, name, attempt, status, worker_id, placed in expired:
        run = live[str(run_id)]
        task = definitions.get(conn, run.version_id).by_name[name]
        if status == TaskStatus.QUEUED and placed and "error" in placed:
            # A hard-sticky run whose worker is gone (engine.placement): it cannot go on.
            error = {"type": STICKY_WORKER_GONE, "message": f"task {name!r}: {placed['error']}"}
            retryable = False
        elif status == TaskStatus.QUEUED:
            waited = f" ({placed['waits']})" if placed and "waits" in placed else ""
            error = {
                "type": "ScheduleTimeout",
                "message": f"task {name!r} was not started by a worker within its "
                f"schedule timeout of {task.schedule_timeout_seconds} s{waited}",
            }
            retryable = False
        else:
            error = {
                "type": "ExecutionTimeout",
                "message": f"task {name!r} did not finish within its execution timeout "
                f"of {task.execution_timeout_seconds} s"
                f" (on worker {worker_id})",
            }
            retryable = True
        row = (task_run_id, run_id, name, attempt)
        if engine_fail(
            conn, topology, definitions, run, out, row, error, retryable=retryable, timed_out=True
        ):
            fired += 1
    return close_batch(conn, topology, definitions, live, out, fired)


_LOST_RUNS = SQL.runs_with_lost_attempts
_LOST = SQL.lost_attempts
_NOT_LIVE = SQL.workers_not_live


def reclaim_lost_attempts(
    conn: Conn, topology: Topology, definitions: Definitions, timeout: float
) -> BatchOutcome:
    """RUNNING attempts whose worker has not been heard from for ``timeout`` seconds
    (killed, frozen, cut off) end with a WorkerLost error and go to another worker at
    once. If the lost worker comes back and reports, its result no longer matches the
    current attempt and is discarded."""
    candidates = conn.execute(
        _LOST_RUNS, {"running": TaskStatus.RUNNING, "timeout": timeout}
    ).fetchall()
    if not candidates:
        return BatchOutcome([], [], 0, 0)
    runs = lock_runs(conn, sorted({str(r[0]) for r in candidates}))
    live = {k: r for k, r in runs.items() if not RunStatus(r.status).is_final}
    if not live:
        return BatchOutcome([], [], 0, 0)
    # Re-read under the run locks: a report may have landed meanwhile.
    lost = conn.execute(
        _LOST, {"running": TaskStatus.RUNNING, "timeout": timeout, "run_ids": list(live)}
    ).fetchall()
    out: list[outbox.OutboxMessage] = []
    reclaimed = 0
    # A worker found silent is no longer live for placement either (its heartbeats may
    # have been recorded with a longer timeout by another scheduler replica).
    conn.execute(_NOT_LIVE, {"worker_ids": sorted({str(r[4]) for r in lost if r[4]})})
    for task_run_id, run_id, name, attempt, worker_id in lost:
        error = {
            "type": WORKER_LOST,
            "message": f"worker {worker_id} stopped sending heartbeats for {timeout} s"
            " while running this attempt; it was handed to another worker",
        }
        row = (task_run_id, run_id, name, attempt)
        if engine_fail(
            conn,
            topology,
            definitions,
            live[str(run_id)],
            out,
            row,
            error,
            retryable=True,
            timed_out=False,
            lost=True,
        ):
            reclaimed += 1
    return close_batch(conn, topology, definitions, live, out, reclaimed)
