"""Runs: reading one or a page of them, cancelling and replaying them
(roost_core.engine.control), their logs and traces. Creating them is ``store.create``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from roost_api.statements import SQL
from roost_api.store import children
from roost_api.store.common import Conn, iso
from roost_core import events, outbox, span_store
from roost_core.engine import control
from roost_core.engine.cancel_task import cancel_task as cancel_task_plan
from roost_core.engine.control import check_run_id
from roost_core.engine.plan import run_async
from roost_core.errors import (
    BadRequestError,
    UnknownRunError,
)
from roost_core.metadata import schedule_trigger
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.topology import Topology

_NEWEST_EVENT = SQL.newest_run_event
_RUN = SQL.run_with_definition
_TASK_RUNS = SQL.run_task_runs
_ATTEMPTS = SQL.run_attempts
_STATUS = SQL.run_status
_RUNS_PAGE = SQL.runs_page
_WORKFLOW_ID = SQL.workflow_id
_EXISTS = SQL.run_exists
_LOG_LINES = SQL.run_log_lines
_TRACE_CONTEXT = SQL.run_trace_context
_CANCELLED_SINCE = SQL.cancelled_attempts_since


def _attempt(row: dict[str, Any]) -> dict[str, Any]:
    """One attempt as HTTP shows it, from a task_attempts row or a task run's current
    attempt (the same columns)."""
    return {
        "attempt": row["attempt"],
        "status": row["status"],
        "worker_id": row["worker_id"],
        "error": row["error"],
        "queued_at": iso(row["queued_at"]),
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "placement": row["placement"],
    }


async def get_run(conn: Conn, tenant_id: str, run_id: str) -> dict[str, Any]:
    """A run with its tasks and their attempts, as the api returns it."""
    check_run_id(run_id)
    params = {"run_id": run_id, "tenant_id": tenant_id}
    # Pipelined: the five reads go out together and cost one round trip, not five (a
    # long poll's answer waited ~3 ms for them, issue #17). They still run in this order,
    # each on a fresh snapshot. First: the newest event this answer reflects. A client
    # following the run's events from here (`after=`) misses nothing; one more read can
    # only repeat.
    async with conn.pipeline():
        reads = [conn.cursor(row_factory=dict_row) for _ in range(4)]
        for cur, sql in zip(reads, (_NEWEST_EVENT, _RUN, _TASK_RUNS, _ATTEMPTS), strict=True):
            await cur.execute(sql, params)
        family = await conn.execute(children.FAMILY, {"run_id": run_id})
        newest = await reads[0].fetchone()
        run = await reads[1].fetchone()
        if run is None:
            raise UnknownRunError(f"run {run_id!r} not found")
        tasks = await reads[2].fetchall()
        attempts = await reads[3].fetchall()
        relatives = children.family_of(await family.fetchone())
    for cur in (*reads, family):
        await cur.close()
    by_task: dict[Any, list[dict[str, Any]]] = {}
    for a in attempts:
        by_task.setdefault(a["task_run_id"], []).append(_attempt(a))
    # Tasks in the order the workflow defines them.
    order = {t["name"]: i for i, t in enumerate(run["definition"]["tasks"])}
    task_list = []
    for t in sorted(tasks, key=lambda t: order.get(t["task_name"], len(order))):
        task_attempts = by_task.get(t["id"], [])
        current = t["attempt"] and t["status"] != TaskStatus.WAITING  # WAITING: not begun
        if current and not any(a["attempt"] == t["attempt"] for a in task_attempts):
            task_attempts.append(_attempt(t))  # its current attempt, not yet recorded
        task_list.append(
            {
                "id": str(t["id"]),
                "name": t["task_name"],
                "status": t["status"],
                "parents": t["parents"],
                "attempt": t["attempt"],
                "output": t["output"],
                "error": t["error"],
                "worker_id": t["worker_id"],
                "queued_at": iso(t["queued_at"]),
                "started_at": iso(t["started_at"]),
                "finished_at": iso(t["finished_at"]),
                "waiting": t["waiting"],
                "placement": t["placement"],
                "attempts": task_attempts,
            }
        )
    return {
        **_run_summary(run),
        "input": run["input"],
        "output": run["output"],
        "error": run["error"],
        "tasks": task_list,
        **relatives,
        "last_event_id": newest["last"] if newest else None,
    }


def _run_summary(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(run["id"]),
        "workflow": run["workflow_name"],
        "workflow_version": run.get("version"),
        "status": run["status"],
        "idempotency_key": run["idempotency_key"],
        "created_at": iso(run["created_at"]),
        "started_at": iso(run["started_at"]),
        "finished_at": iso(run["finished_at"]),
        "metadata": run.get("metadata") or {},
        "priority": run.get("priority", 1),
        "trigger": schedule_trigger(run.get("metadata") or {}),
    }


async def run_status(conn: Conn, run_id: str) -> str | None:
    cur = await conn.execute(_STATUS, {"run_id": run_id})
    row = await cur.fetchone()
    return row[0] if row else None


async def list_runs(
    conn: Conn,
    tenant_id: str,
    workflow: str | None,
    status: str | None,
    limit: int,
    cursor: tuple[datetime, str] | None,
    metadata: dict[str, str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    parent_run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated on (created_at, id); ``metadata`` pairs must all
    match; ``since`` / ``until`` bound the creation time; ``parent_run_id``: only the
    runs triggered inside that run's tasks (child runs).

    A workflow filter is turned into its id first, so that the (workflow_id, [status,]
    created_at) indexes serve it: tested with a million runs (``just bench``)."""
    # Built here, from the named fragment: only the filters given go in the WHERE, so
    # PostgreSQL plans each combination for the index that serves it; one fixed
    # statement with "%(x)s IS NULL OR ..." per filter would get a generic plan that
    # scans.
    query = _RUNS_PAGE
    params: dict[str, Any] = {"tenant_id": tenant_id, "limit": limit}
    if workflow:
        cur = await conn.execute(_WORKFLOW_ID, {"tenant_id": tenant_id, "name": workflow})
        found = await cur.fetchone()
        if found is None:
            return []  # no such workflow: no runs of it (as for a name with no runs yet)
        query += " AND r.workflow_id = %(workflow_id)s"
        params["workflow_id"] = found[0]
    if status:
        if status not in RunStatus.__members__:
            raise BadRequestError(
                f"unknown status {status!r}: use one of {', '.join(RunStatus.__members__)}"
            )
        query += " AND r.status = %(status)s"
        params["status"] = status
    if metadata:
        query += " AND r.metadata @> %(metadata)s"
        params["metadata"] = Jsonb(metadata)
    if since is not None:
        query += " AND r.created_at >= %(since)s"
        params["since"] = since
    if until is not None:
        query += " AND r.created_at < %(until)s"
        params["until"] = until
    if parent_run_id is not None:
        query += " AND r.id IN (SELECT run_id FROM run_parents WHERE parent_run_id = %(parent)s)"
        params["parent"] = parent_run_id
    if cursor:
        query += " AND (r.created_at, r.id) < (%(after_at)s, %(after_id)s)"
        params["after_at"], params["after_id"] = cursor
    query += " ORDER BY r.created_at DESC, r.id DESC LIMIT %(limit)s"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [_run_summary(r) for r in await cur.fetchall()]


async def cancel_run(
    conn: Conn, topology: Topology, tenant_id: str, run_id: str, reason: str | None = None
) -> tuple[bool, list[outbox.OutboxRow]]:
    """Cancel a run in the caller's transaction (roost_core.engine.control.cancel_run)."""
    async with conn.cursor() as c:
        return await run_async(c, control.cancel_run(topology, tenant_id, run_id, reason))


async def cancel_task(
    conn: Conn, topology: Topology, tenant_id: str, run_id: str, task: str, reason: str | None
) -> tuple[str, list[outbox.OutboxRow]]:
    """Cancel one task of a run in the caller's transaction
    (roost_core.engine.cancel_task): CANCELLED, or CANCELLING while the scheduler ends
    its active attempt."""
    check_run_id(run_id)
    async with conn.cursor() as c:
        return await run_async(c, cancel_task_plan(topology, tenant_id, run_id, task, reason))


async def replay_run(
    conn: Conn, topology: Topology, tenant_id: str, run_id: str
) -> list[outbox.OutboxRow]:
    """Replay an ended run in the caller's transaction (roost_core.engine.control)."""
    async with conn.cursor() as c:
        return await run_async(c, control.replay_run(topology, tenant_id, run_id))


async def task_logs(
    conn: Conn, tenant_id: str, run_id: str, task: str | None, after: int, limit: int
) -> list[dict[str, Any]]:
    """A run's log lines (optionally one task's) with event ids above ``after``."""
    check_run_id(run_id)
    cur = await conn.execute(_EXISTS, {"run_id": run_id, "tenant_id": tenant_id})
    if await cur.fetchone() is None:
        raise UnknownRunError(f"run {run_id!r} not found")
    cur = await conn.execute(
        _LOG_LINES,
        {
            "run_id": run_id,
            "type": events.TASK_LOG,
            "task": task,
            "after": after,
            "limit": limit,
        },
    )
    return [
        {"id": r[0], "task": r[1], "attempt": r[2], "message": r[3], "at": float(r[4])}
        for r in await cur.fetchall()
    ]


async def run_trace(conn: Conn, tenant_id: str, run_id: str) -> dict[str, Any]:
    """A run's stored spans, in start order, with the run's trace id and status."""
    check_run_id(run_id)
    cur = await conn.execute(_TRACE_CONTEXT, {"run_id": run_id, "tenant_id": tenant_id})
    row = await cur.fetchone()
    if row is None:
        raise UnknownRunError(f"run {run_id!r} not found")
    cur = await conn.execute(span_store.RUN_SPANS_WATERFALL, {"run_id": run_id})
    records = [span_store.from_row(r) for r in await cur.fetchall()]
    traceparent = row[1] or ""
    trace_id = traceparent.split("-")[1] if traceparent.count("-") == 3 else None
    return {
        "run_id": run_id,
        "status": row[0],
        "trace_id": trace_id,
        "spans": [s.model_dump() for s in records],
    }


async def cancelled_attempts(conn: Conn, tenant_id: str, since: float) -> list[str]:
    """Task runs with an attempt cancelled since ``since`` (unix seconds), newest first."""
    cur = await conn.execute(
        _CANCELLED_SINCE,
        {"cancelled": TaskStatus.CANCELLED, "since": since, "tenant_id": tenant_id},
    )
    return [str(row[0]) for row in await cur.fetchall()]
