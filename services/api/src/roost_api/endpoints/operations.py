"""Operating the service: liveness, readiness, activity, workers, stream tokens."""

from __future__ import annotations

import anyio.to_thread
import pika.exceptions
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import store
from roost_api.http import parsed_body, query_of
from roost_api.openapi import operation
from roost_api.params import ActivityQuery
from roost_api.resources import resources
from roost_api.statements import SQL
from roost_core.api_shapes import (
    Activity,
    Health,
    StreamToken,
    StreamTokenRequest,
    WorkerInfo,
    WorkerList,
)
from roost_core.auth import mint_stream_token
from roost_core.authentication import principal_of, tenant_of
from roost_core.errors import BrokerUnavailableError, NotFoundError
from roost_core.queries import SQL as CORE_SQL

_PING = CORE_SQL.ping
_TENANT_WORKFLOW_NAMES = SQL.tenant_workflow_names


@operation("Liveness", tag="operations", public=True, ok={200: ("the process is up", Health)})
async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@operation(
    "Readiness (PostgreSQL reachable)",
    tag="operations",
    public=True,
    ok={200: ("ready", Health), 503: ("PostgreSQL is unreachable (error says why)", Health)},
)
async def ready(request: Request) -> Response:
    r = resources(request)
    try:
        async with r.pool.connection(timeout=2) as conn:
            await conn.execute(_PING)
    except Exception as exc:
        return JSONResponse(
            {"status": "unavailable", "error": f"PostgreSQL: {exc}"}, status_code=503
        )
    return JSONResponse({"status": "ready"})


@operation(
    "The last minutes of activity, a point per minute (for charts)",
    tag="operations",
    description=(
        "Runs that ended each minute by final state, the p50/p95 duration of their tasks, "
        "and the attempts ready on each workflow's task queue now (null when RabbitMQ is "
        "away)."
    ),
    query=ActivityQuery,
    ok={200: ("a point per minute, oldest first", Activity)},
)
async def activity(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    minutes = query_of(request, ActivityQuery).minutes
    async with r.pool.connection() as conn:
        body = await store.activity(conn, tenant, minutes)
        cur = await conn.execute(_TENANT_WORKFLOW_NAMES, {"tenant_id": tenant})
        names = [r[0] for r in await cur.fetchall()]
    try:
        body["ready"] = await anyio.to_thread.run_sync(r.declarer.ready_counts, names)
    except (pika.exceptions.AMQPError, BrokerUnavailableError):
        body["ready"] = None  # the broker is away: the rest still stands
    return JSONResponse(body)


_WORKER_STATUSES = (
    "status: alive; draining: asked to stop, finishing its running tasks; stopped: "
    "exited cleanly; dead: silent past the heartbeat timeout without having stopped. "
    "version is the application's, as its operator set it, or null; running is the "
    "slots in use."
)


@operation(
    "Worker processes, alive, draining, stopped or dead, from their heartbeats",
    tag="workers",
    description="One entry per worker process (id name@host:pid). " + _WORKER_STATUSES,
    ok={200: ("the workers, those still heard from first", WorkerList)},
)
async def list_workers(request: Request) -> Response:
    r = resources(request)
    async with r.pool.connection() as conn:
        workers = await store.list_workers(conn, r.settings.worker_heartbeat_timeout_seconds)
    return JSONResponse({"workers": workers})


@operation(
    "One worker process, from its heartbeats",
    tag="workers",
    description=_WORKER_STATUSES,
    ok={200: ("the worker", WorkerInfo)},
    errors={404: "no worker process has this id"},
)
async def get_worker(request: Request) -> Response:
    r = resources(request)
    worker_id = request.path_params["worker_id"]
    async with r.pool.connection() as conn:
        workers = await store.list_workers(
            conn, r.settings.worker_heartbeat_timeout_seconds, worker_id
        )
    if not workers:
        raise NotFoundError(f"worker {worker_id!r} not found")
    return JSONResponse(workers[0])


@operation(
    "A short-lived stream token, for EventSource URLs on the gateway",
    tag="operations",
    description=(
        "Browsers' EventSource cannot send an Authorization header. Send the API token "
        "here, then pass the returned token as ?token= to the gateway."
    ),
    body=StreamTokenRequest,
    body_required=False,
    ok={201: ("the token and when it expires", StreamToken)},
)
async def stream_token(request: Request) -> Response:
    principal = principal_of(request)
    body = await parsed_body(request, StreamTokenRequest, "invalid stream token request")
    token, expires = mint_stream_token(principal, float(body.ttl_seconds))
    return JSONResponse({"token": token, "expires_at": expires}, status_code=201)


ROUTES: list[BaseRoute] = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/api/v1/activity", activity, methods=["GET"]),
    Route("/api/v1/workers", list_workers, methods=["GET"]),
    Route("/api/v1/workers/{worker_id:path}", get_worker, methods=["GET"]),
    Route("/api/v1/stream-tokens", stream_token, methods=["POST"]),
]
