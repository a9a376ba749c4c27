"""Runs: read one (long-polling until it ends), list them, cancel, replay, a run's logs
and trace."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import store
from roost_api.http import (
    MAX_PAGE,
    MAX_WAIT_SECONDS,
    decode_cursor,
    encode_cursor,
    float_param,
    int_param,
    parsed_body,
    time_param,
)
from roost_api.resources import resources
from roost_core import metadata, metrics
from roost_core.api_models import CancelTaskRequest
from roost_core.authentication import tenant_of
from roost_core.errors import (
    BadRequestError,
)
from roost_core.statuses import RunStatus


async def get_run(request: Request) -> Response:
    """
    summary: A run with each task's status, attempts, output, error and timings
    parameters:
      - {name: wait, in: query, description: seconds to wait for the run to end (max 60)}
    responses:
      200: {description: the run}
      404: {description: unknown run}
    """
    tenant = tenant_of(request)
    r = resources(request)
    run_id = request.path_params["run_id"]
    wait = float_param(request, "wait", 0.0)
    wait = min(max(wait, 0.0), MAX_WAIT_SECONDS)
    if wait <= 0:
        async with r.pool.connection() as conn:
            return JSONResponse(await store.get_run(conn, tenant, run_id))
    with r.waiters.watch(run_id) as event:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            # Clear before reading: a NOTIFY that lands during the read must wake
            # the wait below, not be forgotten.
            event.clear()
            async with r.pool.connection() as conn:
                run = await store.get_run(conn, tenant, run_id)
            remaining = deadline - loop.time()
            if RunStatus(run["status"]).is_final or remaining <= 0:
                return JSONResponse(run)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)


async def cancel_run(request: Request) -> Response:
    """
    summary: Cancel a run (queued tasks never start, running ones are interrupted)
    responses:
      200: {description: "the run, CANCELLED (or as it was, if it had already ended)"}
      404: {description: unknown run}
    """
    tenant = tenant_of(request)
    r = resources(request)
    run_id = request.path_params["run_id"]
    async with r.pool.connection() as conn:
        async with conn.transaction():
            _, rows = await store.cancel_run(conn, r.topology, tenant, run_id)
        r.relay.submit(rows)
        metrics.count_rows(rows)  # the runs and attempts it ended
        return JSONResponse(await store.get_run(conn, tenant, run_id))


async def cancel_task(request: Request) -> Response:
    """
    summary: Cancel one task of a run (its descendants never start; other branches go on)
    description: >-
      Optional body {"reason": "..."}. A task not yet started ends CANCELLED at once
      (200), with its descendants. An active one (queued or running) is stopped on its
      worker and ended by the scheduler (202, "CANCELLING"), unless it finishes first.
      The task is not retried. The run ends CANCELLED once everything has settled, if no
      task failed.
    responses:
      200: {description: "{run_id, task, status: CANCELLED}"}
      202: {description: "{run_id, task, status: CANCELLING}"}
      404: {description: unknown run, or a task the run does not have}
      409: {description: the run or the task has ended}
    """
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


async def replay_run(request: Request) -> Response:
    """
    summary: Re-run an ended run's failed and cancelled tasks and their descendants
    responses:
      200: {description: the run, running again}
      404: {description: unknown run}
      409: {description: the run has not ended, or it succeeded}
    """
    tenant = tenant_of(request)
    r = resources(request)
    run_id = request.path_params["run_id"]
    async with r.pool.connection() as conn:
        async with conn.transaction():
            rows = await store.replay_run(conn, r.topology, tenant, run_id)
        r.relay.submit(rows)
        return JSONResponse(await store.get_run(conn, tenant, run_id))


async def task_logs(request: Request) -> Response:
    """
    summary: A run's log lines, oldest first (paginated by event id)
    parameters:
      - {name: task, in: query, description: only this task's lines}
      - {name: after, in: query, description: next_after of the previous page}
      - {name: limit, in: query}
    responses:
      200: {description: "{logs: [{id, task, attempt, message, at}], next_after}"}
      404: {description: unknown run}
    """
    tenant = tenant_of(request)
    r = resources(request)
    run_id = request.path_params["run_id"]
    limit = int_param(request, "limit", 100, 1, MAX_PAGE)
    after = int_param(request, "after", 0, 0, 2**62)
    async with r.pool.connection() as conn:
        logs = await store.task_logs(
            conn, tenant, run_id, request.query_params.get("task"), after, limit
        )
    next_after = logs[-1]["id"] if len(logs) == limit else None
    return JSONResponse({"logs": logs, "next_after": next_after})


async def run_trace(request: Request) -> Response:
    """
    summary: A run's trace, from Roost's own span store (no collector needed)
    description: >-
      Every stored span of the run, in start order: trace_id, span_id,
      parent_span_id, name, service, kind, start and end (unix seconds), status,
      status_message, attributes and events (an exception is an event). Spans
      arrive a fraction of a second after they end.
    responses:
      200: {description: "{run_id, status, trace_id, spans: [...]}"}
      404: {description: unknown run}
    """
    tenant = tenant_of(request)
    r = resources(request)
    async with r.pool.connection() as conn:
        body = await store.run_trace(conn, tenant, request.path_params["run_id"])
    return JSONResponse(body)


async def list_runs(request: Request) -> Response:
    """
    summary: List runs, newest first (filter by workflow, status, creation time and
      metadata; keyset pagination)
    parameters:
      - {name: workflow, in: query}
      - {name: status, in: query}
      - {name: since, in: query, description: "created at or after (ISO 8601 or unix seconds)"}
      - {name: until, in: query, description: "created before (ISO 8601 or unix seconds)"}
      - {name: meta.KEY, in: query, description: "metadata KEY equals the value (repeat
          for more pairs: all must match)"}
      - {name: limit, in: query}
      - {name: cursor, in: query, description: next_cursor of the previous page}
    responses:
      200: {description: a page of runs}
      400: {description: a bad filter, named}
    """
    tenant = tenant_of(request)
    r = resources(request)
    q = request.query_params
    limit = int_param(request, "limit", 50, 1, MAX_PAGE)
    cursor = decode_cursor(q["cursor"]) if q.get("cursor") else None
    wanted = {k.removeprefix("meta."): v for k, v in q.items() if k.startswith("meta.")}
    try:
        wanted = metadata.check(wanted)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
    async with r.pool.connection() as conn:
        runs = await store.list_runs(
            conn,
            tenant,
            q.get("workflow"),
            q.get("status"),
            limit,
            cursor,
            metadata=wanted,
            since=time_param(request, "since"),
            until=time_param(request, "until"),
        )
    next_cursor = (
        encode_cursor(runs[-1]["created_at"], runs[-1]["id"]) if len(runs) == limit else None
    )
    return JSONResponse({"runs": runs, "next_cursor": next_cursor})


async def cancelled_attempts(request: Request) -> Response:
    """
    summary: Task runs whose queued or running attempt was cancelled since a time
    description: Workers ask at start, so that they never start an attempt cancelled
      before they were listening for cancellations.
    parameters:
      - {name: since, in: query, description: unix seconds}
    responses:
      200: {description: "{task_run_ids: [...]}"}
    """
    tenant = tenant_of(request)
    r = resources(request)
    since = float_param(request, "since", 0.0)
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
