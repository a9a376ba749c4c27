"""Runs: creating them (roost_core.engine.trigger), reading one or a page of them,
cancelling and replaying (roost_core.engine.control), their logs and traces."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import trace
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from roost_api.statements import SQL
from roost_api.store.common import Conn, iso
from roost_api.store.rate_limits import check_admissible
from roost_api.store.workflows import WorkflowVersion
from roost_core import events, outbox, span_store, tracing
from roost_core.engine import control, trigger
from roost_core.engine.control import check_run_id
from roost_core.engine.plan import run_async
from roost_core.errors import (
    BadRequestError,
    UnknownRunError,
)
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

_tracer = tracing.tracer("roost.api")


@dataclass(frozen=True)
class CreatedRun:
    run_id: str
    summary: dict[str, Any] | None  # None: an existing run had this idempotency key


@dataclass(frozen=True)
class Trigger:
    runs: list[CreatedRun]  # one per request, in order
    outbox_rows: list[outbox.OutboxRow]  # to publish after commit


@dataclass(frozen=True)
class RunRequest:
    input: Any
    idempotency_key: str | None = None
    metadata: dict[str, str] | None = None


# Run spans end only once their runs have committed: the span store keeps spans of
# runs that exist, and a span exported before its run's commit would be dropped.
_pending_run_spans: ContextVar[list[trace.Span] | None] = ContextVar(
    "roost_pending_run_spans", default=None
)


@contextlib.contextmanager
def run_spans_end_after() -> Iterator[None]:
    """End the run spans that ``create_runs`` starts inside this block when it exits:
    wrap the transaction with it."""
    token = _pending_run_spans.set([])
    try:
        yield
    finally:
        pending = _pending_run_spans.get() or []
        _pending_run_spans.reset(token)
        for span in pending:
            span.end()


async def create_runs(
    conn: Conn,
    topology: Topology,
    tenant_id: str,
    wv: WorkflowVersion,
    requests: list[RunRequest],
) -> Trigger:
    """Insert runs, their task runs, their first events and their root tasks' messages,
    in the caller's transaction, with a fixed number of statements however many runs
    there are. A request whose idempotency key was already used for this workflow (or
    earlier in the same list) gets the existing run and creates nothing."""
    definition = wv.definition
    inputs = [r.input for r in requests]
    await check_admissible(conn, tenant_id, definition, inputs)
    run_ids = [uuid.uuid4() for _ in requests]
    # One trace per run: a span for the run, child of the trigger's (and of the caller's
    # traceparent, if it sent one); its context travels in every task message. Free
    # (and empty) when tracing is off.
    traces: list[dict[str, str] | None] = [None] * len(run_ids)
    if tracing.enabled() or trace.get_current_span().get_span_context().is_valid:
        pending = _pending_run_spans.get()
        if len(run_ids) == 1:
            # The trigger's span is then this run's root: the span store keeps it with
            # the run. (A bulk trigger's span belongs to no one run.)
            trace.get_current_span().set_attribute("roost.run_id", str(run_ids[0]))
        for index, run_id in enumerate(run_ids):
            span = _tracer.start_span(
                f"run {definition.name}",
                attributes={"roost.run_id": str(run_id), "roost.workflow": definition.name},
            )
            traces[index] = tracing.carrier(trace.set_span_in_context(span)) or None
            if pending is None:
                span.end()
            else:
                pending.append(span)
    async with conn.cursor() as c:
        done = await run_async(
            c,
            trigger.trigger(
                topology,
                tenant_id,
                wv.workflow_id,
                wv.version_id,
                definition,
                [
                    trigger.Request(i, r.input, r.idempotency_key, r.metadata, t)
                    for i, r, t in zip(run_ids, requests, traces, strict=True)
                ],
            ),
        )
    inserted, existing, cancelled = done.inserted, done.existing, done.cancelled
    rows = done.outbox_rows
    created: list[CreatedRun] = []
    tasks_of: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for task_run_id, run_id, name, parents, is_root in done.task_rows:
        tasks_of.setdefault(run_id, []).append(
            {
                "id": str(task_run_id),
                "name": name,
                "status": (TaskStatus.QUEUED if is_root else TaskStatus.PENDING).value,
                "parents": parents,
                "attempt": 1 if is_root else 0,
                "output": None,
                "error": None,
                "worker_id": None,
                "queued_at": iso(inserted[run_id]) if is_root else None,
                "started_at": None,
                "finished_at": None,
                "attempts": [],
            }
        )
    for request, run_id in zip(requests, run_ids, strict=True):
        if run_id not in inserted:
            assert request.idempotency_key is not None
            created.append(CreatedRun(existing[request.idempotency_key], None))
            continue
        # The same shape GET /runs/{id} returns, built from what was just written.
        summary = {
            "id": str(run_id),
            "workflow": definition.name,
            "workflow_version": wv.version,
            "status": RunStatus.QUEUED.value,
            "idempotency_key": request.idempotency_key,
            "created_at": iso(inserted[run_id]),
            "started_at": None,
            "finished_at": None,
            "metadata": request.metadata or {},
            "input": request.input,
            "output": None,
            "error": None,
            "tasks": tasks_of[run_id],
        }
        if str(run_id) in cancelled:  # by the workflow's concurrency: say so now
            summary = await get_run(conn, tenant_id, str(run_id))
        created.append(CreatedRun(str(run_id), summary))
    return Trigger(created, rows)


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
    }


async def get_run(conn: Conn, tenant_id: str, run_id: str) -> dict[str, Any]:
    """A run with its tasks and their attempts, as the api returns it."""
    check_run_id(run_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        # First: the newest event this answer reflects. A client following the run's
        # events from here (`after=`) misses nothing; one more read can only repeat.
        params = {"run_id": run_id, "tenant_id": tenant_id}
        await cur.execute(_NEWEST_EVENT, params)
        newest = await cur.fetchone()
        await cur.execute(_RUN, params)
        run = await cur.fetchone()
        if run is None:
            raise UnknownRunError(f"run {run_id!r} not found")
        await cur.execute(_TASK_RUNS, params)
        tasks = await cur.fetchall()
        await cur.execute(_ATTEMPTS, params)
        attempts = await cur.fetchall()
    by_task: dict[Any, list[dict[str, Any]]] = {}
    for a in attempts:
        by_task.setdefault(a["task_run_id"], []).append(_attempt(a))
    # Tasks in the order the workflow defines them.
    order = {t["name"]: i for i, t in enumerate(run["definition"]["tasks"])}
    task_list = []
    for t in sorted(tasks, key=lambda t: order.get(t["task_name"], len(order))):
        task_attempts = by_task.get(t["id"], [])
        if t["attempt"] and not any(a["attempt"] == t["attempt"] for a in task_attempts):
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
                "attempts": task_attempts,
            }
        )
    return {
        **_run_summary(run),
        "input": run["input"],
        "output": run["output"],
        "error": run["error"],
        "tasks": task_list,
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
) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated on (created_at, id); ``metadata`` pairs must all
    match; ``since`` / ``until`` bound the creation time.

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
