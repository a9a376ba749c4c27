"""A durable task's attempt that suspends to wait (issue #18): it ends, once, WAITING,
giving back its worker slot (its message is acknowledged) and its rate-limit units;
its next attempt is a timer (``dispatch_at``, as a retry's backoff is), sent when the
wait is over with the durable calls completed so far, which it replays
(roost.DurableContext). The waiting attempt is kept in the task's history; it counts as
neither a failure nor a retry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from roost_core import events
from roost_core.engine import approvals, child_waits
from roost_core.engine.event_waits import add_wait
from roost_core.engine.reports_started import started_data
from roost_core.engine.state import ACTIVE, Conn, Definitions, RunState
from roost_core.queries import SQL
from roost_core.statuses import TaskStatus
from roost_core.wire import TaskWaiting

_SUSPEND = SQL.suspend_attempt
_RECORD_ATTEMPT = SQL.record_failed_attempt


def wait_of(report: TaskWaiting) -> dict[str, Any]:
    """What the task waits for, as the task run shows it and its event says: the reason,
    until when (None: a wait without a timeout), an event wait's key and filter, an
    approval's question and details (its id is added once it is recorded), and the
    child runs a join waits for."""
    wait: dict[str, Any] = {"reason": report.reason, "until": report.until}
    if report.event is not None:
        wait.update(key=report.event.key, filter=report.event.filter)
    if report.events is not None:
        wait.update(events={e.name: {"key": e.key, "filter": e.filter} for e in report.events})
    if report.approval is not None:
        wait.update(question=report.approval.question, details=report.approval.details)
    if report.children is not None:
        wait.update(runs=report.children)
    return wait


def suspend_attempt(
    conn: Conn, definitions: Definitions, run: RunState, report: TaskWaiting
) -> bool:
    """End ``report``'s attempt WAITING, once, with its next attempt due at
    ``report.until``. Returns False when it was not the current active attempt (a
    duplicate report, or a run cancelled meanwhile)."""
    wait = wait_of(report)
    if report.approval is not None:  # asked first: its id is part of what the task shows
        seq = max(c.seq for c in report.journal)  # the wait is the last call made
        approval_id = approvals.ask(
            conn, report.task_run_id, report.attempt, seq, report.approval, report.until
        )
        if approval_id is None:
            return False
        wait["approval_id"] = approval_id
    row = conn.execute(
        _SUSPEND,
        {
            "waiting": TaskStatus.WAITING,
            "journal": Jsonb([c.model_dump(mode="json") for c in report.journal]),
            "wait": Jsonb(wait),
            "until": report.until,
            "task_run_id": report.task_run_id,
            "attempt": report.attempt,
            "statuses": ACTIVE,
        },
    ).fetchone()
    if row is None:
        return False
    queued_at, was, placed = row
    if report.event is not None:  # the scheduler matches it with pushed events
        seq = max(c.seq for c in report.journal)  # the wait is the last call made
        add_wait(conn, report.task_run_id, seq, report.event)
    for branch in report.events or ():  # any one of them ends the wait
        add_wait(conn, report.task_run_id, max(c.seq for c in report.journal), branch)
    if report.children:  # the scheduler sends it once they have all ended
        seq = max(c.seq for c in report.journal)
        child_waits.add_waits(conn, report.task_run_id, seq, report.children)
    definition = definitions.get(conn, run.version_id)
    if definition.by_name[report.task].admitted:
        run.released.append((report.task_run_id, report.attempt))  # units come back
    if definition.concurrency is not None:
        run.suspended = True  # its group place may come back too (engine.places)
    if was == TaskStatus.QUEUED:  # too quick for a `started` report of its own
        queued = queued_at.timestamp() if queued_at is not None else None
        run.event(
            events.TASK_STARTED,
            report.task,
            report.attempt,
            started_data(report.worker_id, report.started_at, queued),
            report.started_at,
        )
    conn.execute(
        _RECORD_ATTEMPT,
        {
            "task_run_id": report.task_run_id,
            "attempt": report.attempt,
            "status": TaskStatus.WAITING,
            "worker_id": report.worker_id,
            "error": None,
            "queued_at": queued_at,
            "started_at": _at(report.started_at),
            "finished_at": _at(report.finished_at),
            "placement": Jsonb(placed) if placed is not None else None,
        },
    )
    run.event(events.TASK_WAITING, report.task, report.attempt, wait, report.finished_at)
    return True


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
