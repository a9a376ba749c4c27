"""Every SQL statement the api runs, and nothing else."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import trace
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from roost_api import ratelimits
from roost_core import events, outbox, spans, tracing
from roost_core.engine import control, trigger
from roost_core.engine.control import check_run_id
from roost_core.engine.plan import run_async
from roost_core.errors import (
    BadRequestError,
    NotFoundError,
    UnknownRunError,
    UnknownWorkflowError,
)
from roost_core.statuses import RunStatus, TaskStatus, WorkerStatus
from roost_core.topology import Topology
from roost_core.wire import WorkflowDefinition

Conn = AsyncConnection[Any]
_tracer = tracing.tracer("roost.api")


@dataclass(frozen=True)
class WorkflowVersion:
    workflow_id: str
    version_id: str
    version: str
    definition: WorkflowDefinition


async def register_workflow(
    conn: Conn, tenant_id: str, definition: WorkflowDefinition
) -> tuple[WorkflowVersion, bool]:
    """Upsert the workflow and its version; return it and whether the version is new."""
    version = definition.version_hash()
    cur = await conn.execute(
        "INSERT INTO workflows (id, tenant_id, name) VALUES (%s, %s, %s)"
        " ON CONFLICT (tenant_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        (uuid.uuid4(), tenant_id, definition.name),
    )
    row = await cur.fetchone()
    assert row is not None
    workflow_id = row[0]
    # Registering makes the version current, even an older one again (a rollback).
    # xmax = 0 only on a freshly inserted row: it tells a new version from a known one.
    cur = await conn.execute(
        "INSERT INTO workflow_versions (id, workflow_id, version, definition)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (workflow_id, version)"
        " DO UPDATE SET registered_at = clock_timestamp() RETURNING id, (xmax = 0)",
        (uuid.uuid4(), workflow_id, version, Jsonb(definition.model_dump(mode="json"))),
    )
    row = await cur.fetchone()
    assert row is not None
    return WorkflowVersion(str(workflow_id), str(row[0]), version, definition), bool(row[1])


async def find_version(
    conn: Conn, tenant_id: str, name: str, version: str | None
) -> WorkflowVersion:
    """The given version of a workflow, or its newest; raise if it is unknown."""
    query = (
        "SELECT w.id, v.id, v.version, v.definition FROM workflows w"
        " JOIN workflow_versions v ON v.workflow_id = w.id"
        " WHERE w.tenant_id = %s AND w.name = %s"
    )
    params: list[Any] = [tenant_id, name]
    if version:
        query += " AND v.version = %s"
        params.append(version)
    query += " ORDER BY v.registered_at DESC LIMIT 1"
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    if row is None:
        if version:
            raise UnknownWorkflowError(f"workflow {name!r} has no version {version!r}")
        raise UnknownWorkflowError(
            f"workflow {name!r} is not registered: start a worker that serves it, "
            "or register it with POST /api/v1/workflows"
        )
    return WorkflowVersion(
        str(row[0]), str(row[1]), row[2], WorkflowDefinition.model_validate(row[3])
    )


class VersionCache:
    """Workflow versions by (tenant, name, version hash). A version never changes, so an
    exact lookup is cached for good; "the newest version" is cached only until this
    process registers a new one (other api replicas see a new version within
    ``LATEST_TTL`` seconds)."""

    LATEST_TTL = 2.0

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str, str], WorkflowVersion] = {}
        self._latest: dict[tuple[str, str], tuple[WorkflowVersion, float]] = {}
        self._triggered: dict[str, tuple[list[WorkflowVersion], float]] = {}

    async def get(
        self, conn: Conn, tenant_id: str, name: str, version: str | None
    ) -> WorkflowVersion:
        now = time.monotonic()
        if version:
            found = self._exact.get((tenant_id, name, version))
        else:
            hit = self._latest.get((tenant_id, name))
            found = hit[0] if hit and hit[1] > now else None
        if found is None:
            found = await find_version(conn, tenant_id, name, version)
            self._exact[(tenant_id, name, found.version)] = found
            if not version:
                self._latest[(tenant_id, name)] = (found, now + self.LATEST_TTL)
        return found

    async def triggered(self, conn: Conn, tenant_id: str) -> list[WorkflowVersion]:
        """The newest version of each of the tenant's workflows that has ``on_events``
        patterns, cached like "the newest version" above."""
        now = time.monotonic()
        hit = self._triggered.get(tenant_id)
        if hit is None or hit[1] <= now:
            hit = (await triggered_versions(conn, tenant_id), now + self.LATEST_TTL)
            self._triggered[tenant_id] = hit
        return hit[0]

    def forget_latest(self, tenant_id: str, name: str) -> None:
        self._latest.pop((tenant_id, name), None)
        self._triggered.pop(tenant_id, None)


async def triggered_versions(conn: Conn, tenant_id: str) -> list[WorkflowVersion]:
    """The newest version of every workflow of the tenant whose definition subscribes
    to events (non-empty ``on_events``), by workflow name. An older version's patterns
    do not count: only what the workflow's newest version says."""
    cur = await conn.execute(
        "SELECT w.id, v.id, v.version, v.definition FROM workflows w"
        " CROSS JOIN LATERAL (SELECT x.id, x.version, x.definition FROM workflow_versions x"
        "   WHERE x.workflow_id = w.id ORDER BY x.registered_at DESC LIMIT 1) v"
        " WHERE w.tenant_id = %s"
        "   AND jsonb_array_length(coalesce(v.definition->'on_events', '[]'::jsonb)) > 0"
        " ORDER BY w.name",
        (tenant_id,),
    )
    return [
        WorkflowVersion(str(r[0]), str(r[1]), r[2], WorkflowDefinition.model_validate(r[3]))
        for r in await cur.fetchall()
    ]


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
    await ratelimits.check_admissible(conn, tenant_id, definition, inputs)
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
                "queued_at": _iso(inserted[run_id]) if is_root else None,
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
            "created_at": _iso(inserted[run_id]),
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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def get_run(conn: Conn, tenant_id: str, run_id: str) -> dict[str, Any]:
    """A run with its tasks and their attempts, as the api returns it."""
    check_run_id(run_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        # First: the newest event this answer reflects. A client following the run's
        # events from here (`after=`) misses nothing; one more read can only repeat.
        await cur.execute(
            "SELECT max(id) AS last FROM events WHERE run_id = %s AND tenant_id = %s",
            (run_id, tenant_id),
        )
        newest = await cur.fetchone()
        await cur.execute(
            "SELECT r.*, v.version, v.definition FROM runs r JOIN workflow_versions v"
            " ON v.id = r.workflow_version_id WHERE r.id = %s AND r.tenant_id = %s",
            (run_id, tenant_id),
        )
        run = await cur.fetchone()
        if run is None:
            raise UnknownRunError(f"run {run_id!r} not found")
        await cur.execute("SELECT * FROM task_runs WHERE run_id = %s", (run_id,))
        tasks = await cur.fetchall()
        await cur.execute(
            "SELECT a.* FROM task_attempts a JOIN task_runs t ON t.id = a.task_run_id"
            " WHERE t.run_id = %s ORDER BY a.attempt",
            (run_id,),
        )
        attempts = await cur.fetchall()
    by_task: dict[Any, list[dict[str, Any]]] = {}
    for a in attempts:
        by_task.setdefault(a["task_run_id"], []).append(
            {
                "attempt": a["attempt"],
                "status": a["status"],
                "worker_id": a["worker_id"],
                "error": a["error"],
                "queued_at": _iso(a["queued_at"]),
                "started_at": _iso(a["started_at"]),
                "finished_at": _iso(a["finished_at"]),
            }
        )
    # Tasks in the order the workflow defines them.
    order = {t["name"]: i for i, t in enumerate(run["definition"]["tasks"])}
    task_list = []
    for t in sorted(tasks, key=lambda t: order.get(t["task_name"], len(order))):
        task_attempts = by_task.get(t["id"], [])
        if t["attempt"] and not any(a["attempt"] == t["attempt"] for a in task_attempts):
            task_attempts.append(
                {
                    "attempt": t["attempt"],
                    "status": t["status"],
                    "worker_id": t["worker_id"],
                    "error": t["error"],
                    "queued_at": _iso(t["queued_at"]),
                    "started_at": _iso(t["started_at"]),
                    "finished_at": _iso(t["finished_at"]),
                }
            )
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
                "queued_at": _iso(t["queued_at"]),
                "started_at": _iso(t["started_at"]),
                "finished_at": _iso(t["finished_at"]),
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
        "created_at": _iso(run["created_at"]),
        "started_at": _iso(run["started_at"]),
        "finished_at": _iso(run["finished_at"]),
        "metadata": run.get("metadata") or {},
    }


async def run_status(conn: Conn, run_id: str) -> str | None:
    cur = await conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,))
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
    query = (
        "SELECT r.*, v.version FROM runs r"
        " JOIN workflow_versions v ON v.id = r.workflow_version_id WHERE r.tenant_id = %s"
    )
    params: list[Any] = [tenant_id]
    if workflow:
        cur = await conn.execute(
            "SELECT id FROM workflows WHERE tenant_id = %s AND name = %s", (tenant_id, workflow)
        )
        found = await cur.fetchone()
        if found is None:
            return []  # no such workflow: no runs of it (as for a name with no runs yet)
        query += " AND r.workflow_id = %s"
        params.append(found[0])
    if status:
        if status not in RunStatus.__members__:
            raise BadRequestError(
                f"unknown status {status!r}: use one of {', '.join(RunStatus.__members__)}"
            )
        query += " AND r.status = %s"
        params.append(status)
    if metadata:
        query += " AND r.metadata @> %s"
        params.append(Jsonb(metadata))
    if since is not None:
        query += " AND r.created_at >= %s"
        params.append(since)
    if until is not None:
        query += " AND r.created_at < %s"
        params.append(until)
    if cursor:
        query += " AND (r.created_at, r.id) < (%s, %s)"
        params.extend(cursor)
    query += " ORDER BY r.created_at DESC, r.id DESC LIMIT %s"
    params.append(limit)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [_run_summary(r) for r in await cur.fetchall()]


async def list_workflows(conn: Conn, tenant_id: str) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT DISTINCT ON (w.id) w.name, v.version, v.definition, v.registered_at,"
            " (SELECT count(*) FROM workflow_versions x WHERE x.workflow_id = w.id) AS versions"
            " FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id"
            " WHERE w.tenant_id = %s ORDER BY w.id, v.registered_at DESC",
            (tenant_id,),
        )
        rows = await cur.fetchall()
    return sorted(
        (
            {
                "name": r["name"],
                "version": r["version"],
                "versions": r["versions"],
                "tasks": r["definition"]["tasks"],
                "input_schema": r["definition"].get("input_schema"),
                "updated_at": _iso(r["registered_at"]),
            }
            for r in rows
        ),
        key=lambda w: w["name"],
    )


async def workflow_stats(conn: Conn, tenant_id: str, name: str, hours: float) -> dict[str, Any]:
    """A workflow's runs created in the last ``hours``: counts by outcome, the success
    rate of those that ended, and the p50/p95 of their durations (created to finished).
    Reads the workflow's runs through its (workflow_id, created_at) index."""
    cur = await conn.execute(
        "SELECT id FROM workflows WHERE tenant_id = %s AND name = %s", (tenant_id, name)
    )
    found = await cur.fetchone()
    if found is None:
        raise UnknownWorkflowError(f"workflow {name!r} not found: no worker registered it")
    cur = await conn.execute(
        "SELECT count(*),"
        " count(*) FILTER (WHERE status = 'SUCCEEDED'),"
        " count(*) FILTER (WHERE status = 'FAILED'),"
        " count(*) FILTER (WHERE status = 'CANCELLED'),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY"
        "   extract(epoch FROM finished_at - created_at)) FILTER (WHERE finished_at IS NOT NULL),"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY"
        "   extract(epoch FROM finished_at - created_at)) FILTER (WHERE finished_at IS NOT NULL)"
        " FROM runs WHERE workflow_id = %s AND created_at >= now() - make_interval(secs => %s)",
        (found[0], hours * 3600.0),
    )
    row = await cur.fetchone()
    total, succeeded, failed, cancelled, p50, p95 = row if row else (0, 0, 0, 0, None, None)
    ended = succeeded + failed + cancelled
    return {
        "workflow": name,
        "hours": hours,
        "runs": total,
        "succeeded": succeeded,
        "failed": failed,
        "cancelled": cancelled,
        "success_rate": succeeded / ended if ended else None,
        "duration_p50": float(p50) if p50 is not None else None,
        "duration_p95": float(p95) if p95 is not None else None,
    }


async def activity(conn: Conn, tenant_id: str, minutes: int) -> dict[str, Any]:
    """The tenant's last ``minutes``, a point per minute: runs that ended, by final
    state, and the p50/p95 duration of the tasks of those runs. Both read only runs that
    ended in the window, through the ``runs_finished`` index."""
    cur = await conn.execute(
        "SELECT extract(epoch FROM date_trunc('minute', finished_at))::bigint, status, count(*)"
        " FROM runs WHERE tenant_id = %s AND finished_at >= now() - make_interval(mins => %s)"
        " GROUP BY 1, 2 ORDER BY 1",
        (tenant_id, minutes),
    )
    finished: dict[int, dict[str, int]] = {}
    for minute, status, count in await cur.fetchall():
        finished.setdefault(int(minute), {})[status] = int(count)
    cur = await conn.execute(
        "SELECT extract(epoch FROM date_trunc('minute', t.finished_at))::bigint,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY"
        "   extract(epoch FROM t.finished_at - t.started_at)),"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY"
        "   extract(epoch FROM t.finished_at - t.started_at))"
        " FROM runs r JOIN task_runs t ON t.run_id = r.id"
        " WHERE r.tenant_id = %s AND r.finished_at >= now() - make_interval(mins => %s)"
        "   AND t.started_at IS NOT NULL AND t.finished_at IS NOT NULL"
        " GROUP BY 1 ORDER BY 1",
        (tenant_id, minutes),
    )
    durations = {int(m): (float(p50), float(p95)) for m, p50, p95 in await cur.fetchall()}
    cur = await conn.execute("SELECT extract(epoch FROM date_trunc('minute', now()))::bigint")
    row = await cur.fetchone()
    now = int(row[0]) if row else int(time.time()) // 60 * 60
    points = []
    for minute in range(now - 60 * (minutes - 1), now + 60, 60):
        counts = finished.get(minute, {})
        p50, p95 = durations.get(minute, (None, None))
        points.append(
            {
                "minute": minute,
                "succeeded": counts.get(RunStatus.SUCCEEDED, 0),
                "failed": counts.get(RunStatus.FAILED, 0),
                "cancelled": counts.get(RunStatus.CANCELLED, 0),
                "task_p50": p50,
                "task_p95": p95,
            }
        )
    return {"minutes": minutes, "points": points}


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
    cur = await conn.execute(
        "SELECT 1 FROM runs WHERE id = %s AND tenant_id = %s", (run_id, tenant_id)
    )
    if await cur.fetchone() is None:
        raise UnknownRunError(f"run {run_id!r} not found")
    cur = await conn.execute(
        "SELECT id, task, attempt, data->>'message', extract(epoch FROM created_at) FROM events"
        " WHERE run_id = %s AND type = %s AND (%s::text IS NULL OR task = %s) AND id > %s"
        " ORDER BY seq LIMIT %s",
        (run_id, events.TASK_LOG, task, task, after, limit),
    )
    return [
        {"id": r[0], "task": r[1], "attempt": r[2], "message": r[3], "at": float(r[4])}
        for r in await cur.fetchall()
    ]


async def run_trace(conn: Conn, tenant_id: str, run_id: str) -> dict[str, Any]:
    """A run's stored spans, in start order, with the run's trace id and status."""
    check_run_id(run_id)
    cur = await conn.execute(
        "SELECT status, trace->>'traceparent' FROM runs WHERE id = %s AND tenant_id = %s",
        (run_id, tenant_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise UnknownRunError(f"run {run_id!r} not found")
    cur = await conn.execute(
        f"SELECT {spans.SPAN_COLUMNS} FROM spans WHERE run_id = %s"
        " ORDER BY started_at, ended_at DESC",
        (run_id,),
    )
    records = [spans.from_row(r) for r in await cur.fetchall()]
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
        "SELECT a.task_run_id FROM task_attempts a JOIN task_runs t ON t.id = a.task_run_id"
        " JOIN runs r ON r.id = t.run_id"
        " WHERE a.status = %s AND a.finished_at >= to_timestamp(%s) AND r.tenant_id = %s"
        " ORDER BY a.finished_at DESC LIMIT 100000",
        (TaskStatus.CANCELLED, since, tenant_id),
    )
    return [str(row[0]) for row in await cur.fetchall()]


async def list_workers(conn: Conn, heartbeat_timeout: float) -> list[dict[str, Any]]:
    """Worker processes by their latest heartbeat: alive, draining, stopped, or dead
    when silent longer than ``heartbeat_timeout`` seconds without having said it stopped
    (``WorkerStatus.of``). Those still heard from come first, then the newest."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, name, workflows, slots, running, started_at, last_heartbeat_at, state,"
            " version, sdk_version,"
            " last_heartbeat_at >= now() - make_interval(secs => %s) AS heard_recently"
            " FROM workers"
            " ORDER BY (state <> 'stopped' AND last_heartbeat_at >= now()"
            "   - make_interval(secs => %s)) DESC, last_heartbeat_at DESC LIMIT 1000",
            (heartbeat_timeout, heartbeat_timeout),
        )
        rows = await cur.fetchall()
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "status": WorkerStatus.of(r["state"], r["heard_recently"]).value,
            "version": r["version"],
            "sdk_version": r["sdk_version"],
            "workflows": r["workflows"],
            "slots": r["slots"],
            "running": r["running"],
            "started_at": _iso(r["started_at"]),
            "last_heartbeat_at": _iso(r["last_heartbeat_at"]),
        }
        for r in rows
    ]


# -- pushed events -------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRequest:
    key: str
    data: Any
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Pushed:
    events: list[dict[str, Any]]  # one per request, in order, as the api returns them
    outbox_rows: list[outbox.OutboxRow]  # to publish after commit


async def push_events(
    conn: Conn,
    topology: Topology,
    tenant_id: str,
    plans: list[tuple[EventRequest, list[WorkflowVersion]]],
) -> Pushed | None:
    """Store pushed events, each with a run of every workflow version it matched, in the
    caller's transaction: one ``create_runs`` per workflow (all its events at once) and
    one insert for the events. Returns None, having stored events the caller must roll
    back, when a concurrent request stored an event with one of these idempotency keys
    first."""
    runs_of: list[list[dict[str, str]]] = [[] for _ in plans]
    by_version: dict[str, tuple[WorkflowVersion, list[int]]] = {}
    for index, (_, matched) in enumerate(plans):
        for wv in matched:
            by_version.setdefault(wv.version_id, (wv, []))[1].append(index)
    rows: list[outbox.OutboxRow] = []
    ids = [uuid.uuid4() for _ in plans]
    for wv, indexes in sorted(by_version.values(), key=lambda v: v[0].definition.name):
        # Each run an event starts carries the event's id and key in its metadata.
        requests = [
            RunRequest(
                plans[i][0].data,
                metadata={"event_id": str(ids[i]), "event_key": plans[i][0].key},
            )
            for i in indexes
        ]
        started = await create_runs(conn, topology, tenant_id, wv, requests)
        rows.extend(started.outbox_rows)
        for index, run in zip(indexes, started.runs, strict=True):
            runs_of[index].append({"id": run.run_id, "workflow": wv.definition.name})
    cur = await conn.execute(
        "INSERT INTO pushed_events (id, tenant_id, key, data, idempotency_key, run_ids,"
        " created_at)"
        " SELECT v.id, %s, v.key, v.data::jsonb, v.ikey, string_to_array(v.runs, ',')::uuid[],"
        "   clock_timestamp()"
        " FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[])"
        "   WITH ORDINALITY AS v(id, key, data, ikey, runs, n)"
        " ORDER BY v.n"
        " ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
        " DO NOTHING RETURNING id, created_at",
        (
            tenant_id,
            ids,
            [r.key for r, _ in plans],
            [json.dumps(r.data) for r, _ in plans],
            [r.idempotency_key for r, _ in plans],
            [",".join(run["id"] for run in runs) for runs in runs_of],
        ),
    )
    created = {row[0]: row[1] for row in await cur.fetchall()}
    if len(created) != len(plans):
        return None
    return Pushed(
        [
            {
                "id": str(event_id),
                "key": request.key,
                "data": request.data,
                "idempotency_key": request.idempotency_key,
                "created_at": _iso(created[event_id]),
                "runs": runs,
            }
            for event_id, (request, _), runs in zip(ids, plans, runs_of, strict=True)
        ],
        rows,
    )


_PUSHED_EVENT = (
    "SELECT e.id, e.key, e.data, e.idempotency_key, e.created_at,"
    " (SELECT coalesce(jsonb_agg(jsonb_build_object('id', r.id, 'workflow', r.workflow_name)"
    "   ORDER BY u.n), '[]'::jsonb)"
    "  FROM unnest(e.run_ids) WITH ORDINALITY AS u(id, n) JOIN runs r ON r.id = u.id) AS runs"
    " FROM pushed_events e WHERE e.tenant_id = %s"
)


def _pushed_event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "key": row["key"],
        "data": row["data"],
        "idempotency_key": row["idempotency_key"],
        "created_at": _iso(row["created_at"]),
        "runs": row["runs"],
    }


async def pushed_events_by_idempotency_key(
    conn: Conn, tenant_id: str, keys: list[str]
) -> dict[str, dict[str, Any]]:
    """The tenant's pushed events with these idempotency keys, by key."""
    if not keys:
        return {}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_PUSHED_EVENT + " AND e.idempotency_key = ANY(%s)", (tenant_id, keys))
        return {r["idempotency_key"]: _pushed_event(r) for r in await cur.fetchall()}


async def get_pushed_event(conn: Conn, tenant_id: str, event_id: str) -> dict[str, Any]:
    """A pushed event with the runs it started; NotFoundError if the tenant has none."""
    try:
        uuid.UUID(event_id)
    except ValueError:
        raise NotFoundError(f"pushed event {event_id!r} not found: not an event id") from None
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_PUSHED_EVENT + " AND e.id = %s", (tenant_id, event_id))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"pushed event {event_id!r} not found")
    return _pushed_event(row)


async def list_pushed_events(
    conn: Conn,
    tenant_id: str,
    key: str | None,
    limit: int,
    cursor: tuple[datetime, str] | None,
) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated on (created_at, id); only ``key``'s if given."""
    query = _PUSHED_EVENT
    params: list[Any] = [tenant_id]
    if key:
        query += " AND e.key = %s"
        params.append(key)
    if cursor:
        query += " AND (e.created_at, e.id) < (%s, %s)"
        params.extend(cursor)
    query += " ORDER BY e.created_at DESC, e.id DESC LIMIT %s"
    params.append(limit)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [_pushed_event(r) for r in await cur.fetchall()]
