"""QUEUED -> RUNNING: a worker says an attempt started (or its first log line does);
and a running attempt moves its execution deadline (ctx.refresh_timeout)."""

from __future__ import annotations

from typing import Any

from roost_core import events
from roost_core.engine.state import EXECUTION_GRACE_SECONDS, Conn, Definitions, RunState
from roost_core.queries import SQL
from roost_core.statuses import TaskStatus
from roost_core.wire import TaskEmitted, TaskStarted

_START = SQL.start_attempts
_REFRESH = SQL.refresh_deadlines


def apply_started(
    conn: Conn,
    definitions: Definitions,
    runs: dict[str, RunState],
    reports: list[TaskStarted],
    statuses: list[str],
) -> int:
    """QUEUED -> RUNNING. A start of the same attempt on another worker (RabbitMQ
    redelivered it after its first worker died) takes the task over, when ``statuses``
    allow RUNNING. A task with an execution timeout gets its engine-side deadline:
    start + timeout + grace."""
    if not reports:
        return 0
    timeouts = [
        definitions.get(conn, runs[r.run_id].version_id).by_name[r.task].execution_timeout_seconds
        for r in reports
    ]
    cur = conn.execute(
        _START,
        {
            "running": TaskStatus.RUNNING,
            "grace_seconds": EXECUTION_GRACE_SECONDS,
            "task_run_ids": [r.task_run_id for r in reports],
            "attempts": [r.attempt for r in reports],
            "started_at": [r.started_at for r in reports],
            "worker_ids": [r.worker_id for r in reports],
            "timeouts": timeouts,
            "statuses": statuses,
        },
    )
    rows = cur.fetchall()
    for run_id, name, attempt, worker_id, at, queued in rows:
        runs[str(run_id)].event(
            events.TASK_STARTED, name, attempt, started_data(worker_id, at, queued), float(at)
        )
    return len(rows)


def apply_deadlines(conn: Conn, emitted: list[TaskEmitted]) -> None:
    """Running attempts that moved their execution deadline (``deadline`` lines, from
    ctx.refresh_timeout): the engine's deadline follows, plus the usual grace."""
    if not emitted:
        return
    conn.execute(
        _REFRESH,
        {
            "running": TaskStatus.RUNNING,
            "grace_seconds": EXECUTION_GRACE_SECONDS,
            "task_run_ids": [e.task_run_id for e in emitted],
            "attempts": [e.attempt for e in emitted],
            "deadlines": [float(e.data["deadline"]) for e in emitted],
        },
    )


def started_data(worker_id: str | None, started: Any, queued: Any) -> dict[str, Any]:
    """A ``task.started`` event's data: the worker, and how long the attempt waited
    between being queued (ready, or due for its retry) and starting."""
    data: dict[str, Any] = {"worker_id": worker_id}
    if queued is not None and started is not None:
        data["queued_at"] = float(queued)
        data["queue_wait"] = max(0.0, float(started) - float(queued))
    return data
