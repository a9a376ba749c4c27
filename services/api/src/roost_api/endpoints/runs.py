"""Runs: read one (long-polling until it ends), list them, cancel, replay, a run's logs
and trace."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import store
from roost_api.http import decode_cursor, encode_cursor, parsed_body, query_of
from roost_api.openapi import operation
from roost_api.params import CancelledSince, LogQuery, RunListQuery, RunWait
from roost_api.resources import resources
from roost_core import metadata, metrics, run_ids
from roost_core.api_models import CancelTaskRequest, Run, RunTrace
from roost_core.api_shapes import CancelledAttempts, LogPage, RunPage, TaskCancellation
from roost_core.authentication import tenant_of
from roost_core.errors import (
    BadRequestError,
    UnknownRunError,
)
from roost_core.run_ids import ACCEPTED_GRACE_SECONDS
from roost_core.statuses import RunStatus


@operation(
    "A run with each task's status, attempts, output, error and timings",
    tag="runs",
    description="With wait, a long poll: the answer comes when the run ends or the wait is up.",
    query=RunWait,
    ok={200: ("the run", Run)},
    errors={404: "unknown run"},
)
async def get_run(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    run_id = request.path_params["run_id"]
    wait = query_of(request, RunWait).wait
    if wait <= 0 and not run_ids.may_appear(run_id):
        async with r.pool.connection() as conn:
            return JSONResponse(await store.get_run(conn, tenant, run_id))
    with r.waiters.watch(run_id) as event:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        created_by = loop.time() + max(wait, ACCEPTED_GRACE_SECONDS)
        while True:
            # Clear before reading: a NOTIFY that lands during the read must wake
            # the wait below, not be forgotten.
            event.clear()
            run = await _read(request, run_id, event, created_by)
            remaining = deadline - loop.time()
            if RunStatus(run["status"]).is_final or remaining <= 0:
                return JSONResponse(run)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)


async def _read(
    request: Request, run_id: str, event: asyncio.Event, created_by: float
) -> dict[str, Any]:
    """The run. One the api accepted but the scheduler has not created yet
    (roost_api.accept) is waited for, until ``created_by`` (event loop time); ``event``
    is set (waiters.watch) when it is created."""
    r = resources(request)
    loop = asyncio.get_running_loop()
    while True:
        try:
            async with r.pool.connection() as conn:
                return await store.get_run(conn, tenant_of(request), run_id)
        except UnknownRunError:
            remaining = created_by - loop.time()
            when = run_ids.accepted_at(run_id)
            if not run_ids.may_appear(run_id) or when is None:
                raise
            if remaining <= 0:
                at = datetime.fromtimestamp(when, UTC).isoformat()
                raise UnknownRunError(
                    f"run {run_id!r} not found: accepted at {at} and not created yet"
                    " (is the scheduler running?)"
                ) from None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), remaining)
        event.clear()


@operation(
    "Cancel a run (queued tasks never start, running ones are interrupted)",
    tag="runs",
    ok={200: ("the run, CANCELLED (or as it was, if it had already ended)", Run)},
    errors={404: "unknown run"},
)
async def cancel_run(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    run_id = request.path_params["run_id"]
    if run_ids.may_appear(run_id):  # accepted, maybe not created yet: wait a moment
        with r.waiters.watch(run_id) as event:
            created_by = asyncio.get_running_loop().time() + ACCEPTED_GRACE_SECONDS
            await _read(request, run_id, event, created_by)
    async with r.pool.connection() as conn:
        async with conn.transaction():
            _, rows = await store.cancel_run(conn, r.topology, tenant, run_id)
        r.relay.submit(rows)
        metrics.count_rows(rows)  # the runs and attempts it ended
        return JSONResponse(await store.get_run(conn, tenant, run_id))


@operation(
    "Cancel one task of a run (its descendants never start; other branches go on)",
    tag="runs",
    description=(
        "A task not yet started ends CANCELLED at once (200), with its descendants. An "
        "active one (queued or running) is stopped on its worker and ended by the "
        "scheduler (202, CANCELLING), unless it finishes first. The task is not retried. "
        "The run ends CANCELLED once everything has settled, if no task failed."
    ),
    body=CancelTaskRequest,
    body_required=False,
    ok={
        200: ("the task is CANCELLED", TaskCancellation),
        202: ("the task is CANCELLING: its worker was asked to stop it", TaskCancellation),
    },
    errors={
        404: "unknown run, or a task the run does not have",
        409: "the run or the task has ended",
    },
)
async def cancel_task(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    run_id, task = request.path_params["run_id"], request.path_params["task"]
    body = await parsed_body(request, CancelTaskRequest, "invalid cancel request")
    async with r.pool.connection() as conn:
        async with conn.transaction():
            status, rows = await store.cancel_task(
                conn, r.topology, tenant, run_id, task, body.reason
            )
        r.relay.submit(rows)
    return JSONResponse(
        {"run_id": run_id, "task": task, "status": status},
        status_code=200 if status == "CANCELLED" else 202,
    )


@operation(
    "Re-run an ended run's failed and cancelled tasks and their descendants",
    tag="runs",
    ok={200: ("the run, running again", Run)},
    errors={404: "unknown run", 409: "the run has not ended, or it succeeded"},
)
async def replay_run(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    run_id = request.path_params["run_id"]
    async with r.pool.connection() as conn:
        async with conn.transaction():
            rows = await store.replay_run(conn, r.topology, tenant, run_id)
        r.relay.submit(rows)
        return JSONResponse(await store.get_run(conn, tenant, run_id))


@operation(
    "A run's log lines, oldest first (paginated by event id)",
    tag="runs",
    query=LogQuery,
    ok={200: ("a page of log lines", LogPage)},
    errors={404: "unknown run"},
)
async def task_logs(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    run_id = request.path_params["run_id"]
    q = query_of(request, LogQuery)
    async with r.pool.connection() as conn:
        logs = await store.task_logs(conn, tenant, run_id, q.task, q.after, q.limit)
    next_after = logs[-1]["id"] if len(logs) == q.limit else None
    return JSONResponse({"logs": logs, "next_after": next_after})


@operation(
    "A run's trace, from Roost's own span store (no collector needed)",
    tag="runs",
    description=(
        "Every stored span of the run, in start order (times in unix seconds; an "
        "exception is an event of its span). Spans arrive a fraction of a second after "
        "they end."
    ),
    ok={200: ("the run's spans", RunTrace)},
    errors={404: "unknown run"},
)
async def run_trace(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    async with r.pool.connection() as conn:
        body = await store.run_trace(conn, tenant, request.path_params["run_id"])
    return JSONResponse(body)


@operation(
    "List runs, newest first (by workflow, status, creation time and metadata)",
    tag="runs",
    description=(
        "Keyset pagination: pass next_cursor as cursor for the next page. Metadata "
        "filters are parameters named meta.KEY (meta.user=alice): the run's metadata "
        "KEY equals the value; with several, all must match."
    ),
    query=RunListQuery,
    ok={200: ("a page of runs", RunPage)},
)
async def list_runs(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    q = query_of(request, RunListQuery)
    cursor = decode_cursor(q.cursor) if q.cursor else None
    wanted = {
        k.removeprefix("meta."): v for k, v in request.query_params.items() if k.startswith("meta.")
    }
    try:
        wanted = metadata.check(wanted)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
    async with r.pool.connection() as conn:
        runs = await store.list_runs(
            conn,
            tenant,
            q.workflow,
            q.status.value if q.status else None,
            q.limit,
            cursor,
            metadata=wanted,
            since=q.since,
            until=q.until,
            parent_run_id=None if q.parent_run_id is None else str(q.parent_run_id),
        )
    next_cursor = (
        encode_cursor(runs[-1]["created_at"], runs[-1]["id"]) if len(runs) == q.limit else None
    )
    return JSONResponse({"runs": runs, "next_cursor": next_cursor})


@operation(
    "Task runs whose queued or running attempt was cancelled since a time",
    tag="runs",
    description=(
        "Workers ask at start, so that they never start an attempt cancelled before they "
        "were listening for cancellations."
    ),
    query=CancelledSince,
    ok={200: ("the task runs' ids", CancelledAttempts)},
)
async def cancelled_attempts(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    since = query_of(request, CancelledSince).since
    async with r.pool.connection() as conn:
        ids = await store.cancelled_attempts(conn, tenant, since)
    return JSONResponse({"task_run_ids": ids})


ROUTES: list[BaseRoute] = [
    Route("/api/v1/runs", list_runs, methods=["GET"]),
    Route("/api/v1/cancelled-attempts", cancelled_attempts, methods=["GET"]),
    Route("/api/v1/runs/{run_id}", get_run, methods=["GET"]),
    Route("/api/v1/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/replay", replay_run, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/tasks/{task}/cancel", cancel_task, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/logs", task_logs, methods=["GET"]),
    Route("/api/v1/runs/{run_id}/trace", run_trace, methods=["GET"]),
]
