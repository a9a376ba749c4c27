"""Operating the service: liveness, readiness, activity, workers, stream tokens."""

from __future__ import annotations

import anyio.to_thread
import pika.exceptions
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import store
from roost_api.http import int_param, json_body
from roost_api.resources import resources
from roost_api.statements import SQL
from roost_core.auth import MAX_STREAM_TOKEN_SECONDS, mint_stream_token
from roost_core.authentication import principal_of, tenant_of
from roost_core.errors import (
    BadRequestError,
    BrokerUnavailableError,
)
from roost_core.queries import SQL as CORE_SQL

_PING = CORE_SQL.ping
_TENANT_WORKFLOW_NAMES = SQL.tenant_workflow_names


async def health(request: Request) -> Response:
    """
    summary: Liveness
    responses:
      200: {description: the process is up}
    """
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """
    summary: Readiness (PostgreSQL reachable)
    responses:
      200: {description: ready}
      503: {description: a dependency is down}
    """
    r = resources(request)
    try:
        async with r.pool.connection(timeout=2) as conn:
            await conn.execute(_PING)
    except Exception as exc:
        return JSONResponse(
            {"status": "unavailable", "error": f"PostgreSQL: {exc}"}, status_code=503
        )
    return JSONResponse({"status": "ready"})


async def activity(request: Request) -> Response:
    """
    summary: The last minutes of activity, a point per minute (for charts)
    description: >-
      Runs that ended each minute by final state, the p50/p95 duration of their
      tasks, and the attempts ready on each workflow's task queue now.
    parameters:
      - {name: minutes, in: query, description: "1..1440, default 60"}
    responses:
      200: {description: "{minutes, points: [...], ready: {workflow: n}}"}
    """
    tenant = tenant_of(request)
    r = resources(request)
    minutes = int_param(request, "minutes", 60, 1, 1440)
    async with r.pool.connection() as conn:
        body = await store.activity(conn, tenant, minutes)
        cur = await conn.execute(_TENANT_WORKFLOW_NAMES, {"tenant_id": tenant})
        names = [r[0] for r in await cur.fetchall()]
    try:
        body["ready"] = await anyio.to_thread.run_sync(r.declarer.ready_counts, names)
    except (pika.exceptions.AMQPError, BrokerUnavailableError):
        body["ready"] = None  # the broker is away: the rest still stands
    return JSONResponse(body)


async def list_workers(request: Request) -> Response:
    """
    summary: Worker processes, alive, draining, stopped or dead, from their heartbeats
    description: >-
      One entry per worker process (id name@host:pid): status (alive; draining: asked
      to stop, finishing its running tasks; stopped: exited cleanly; dead: silent past
      the heartbeat timeout without having stopped), version (the application's, as
      its operator set it, or null), sdk_version, workflows, slots, running (slots in
      use), started_at and last_heartbeat_at.
    responses:
      200: {description: "{workers: [{id, name, status, version, sdk_version, ...}]}"}
    """
    r = resources(request)
    async with r.pool.connection() as conn:
        workers = await store.list_workers(conn, r.settings.worker_heartbeat_timeout_seconds)
    return JSONResponse({"workers": workers})


async def stream_token(request: Request) -> Response:
    """
    summary: A short-lived stream token, for EventSource URLs on the gateway
    description: >-
      Browsers' EventSource cannot send an Authorization header. Send the API token
      here, then pass the returned token as ?token= to the gateway. Body (optional):
      {"ttl_seconds": 1..3600}, default 300.
    responses:
      201: {description: "{token, expires_at}"}
      401: {description: missing, invalid or revoked API token}
    """
    principal = principal_of(request)
    body = await json_body(request) if await request.body() else {}
    ttl = body.get("ttl_seconds", 300) if isinstance(body, dict) else None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise BadRequestError(f"ttl_seconds must be a number of seconds, not {ttl!r}")
    if not 1 <= ttl <= MAX_STREAM_TOKEN_SECONDS:
        raise BadRequestError(
            f"ttl_seconds must be from 1 to {MAX_STREAM_TOKEN_SECONDS}, not {ttl!r}"
        )
    token, expires = mint_stream_token(principal, float(ttl))
    return JSONResponse({"token": token, "expires_at": expires}, status_code=201)


ROUTES: list[BaseRoute] = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/api/v1/activity", activity, methods=["GET"]),
    Route("/api/v1/workers", list_workers, methods=["GET"]),
    Route("/api/v1/stream-tokens", stream_token, methods=["POST"]),
]
