"""The gateway's HTTP side: Server-Sent Events for a run, a workflow, or the tenant.

Every stream sends ``id:`` (the durable event id), ``event:`` (its type) and JSON
``data:``, heartbeat comments while idle, and resumes after ``Last-Event-ID`` (or
``?after=``). Auth: the api's tokens, in an ``Authorization: Bearer`` header or, for
browsers' EventSource, a short-lived stream token in ``?token=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from roost_core import run_ids
from roost_core.auth import TokenVerifier
from roost_core.authentication import (
    Authentication,
    bearer_or_stream_token,
    error_response,
    tenant_of,
)
from roost_core.db import async_pool, translate_errors
from roost_core.errors import BadRequestError, RoostError, UnknownRunError, UnknownWorkflowError
from roost_core.queries import SQL
from roost_core.topology import Topology
from roost_gateway.consumer import EventConsumer
from roost_gateway.hub import Hub, Scope
from roost_gateway.log import EventLog
from roost_gateway.settings import GatewaySettings
from roost_gateway.spans import SpanWriter
from roost_gateway.streams import TypeFilter, run_stream, scope_stream

logger = logging.getLogger(__name__)

_PING = SQL.ping
SUBSCRIBERS = Gauge("roost_gateway_subscribers", "Streams attached to this gateway.")

# What needs no token: the probes and the metrics.
PUBLIC = frozenset({"/health", "/ready", "/metrics"})


async def roost_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RoostError)
    return error_response(request, exc)


def create_app(settings: GatewaySettings) -> Starlette:
    topology = Topology(settings.namespace)
    pool = async_pool(settings.database_url, settings.db_pool_size)
    verifier = TokenVerifier(pool, settings.token_cache_seconds)
    hub = Hub(settings.subscriber_buffer)
    SUBSCRIBERS.set_function(lambda: hub.subscribers)
    log = EventLog(pool)
    consumer = EventConsumer(settings.broker_url, topology, hub)
    span_writer = SpanWriter(
        settings.broker_url, settings.database_url, topology, settings.trace_max_spans_per_run
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=False)
        consumer.start(asyncio.get_running_loop())
        span_writer.start()
        logger.info(
            "gateway ready", extra={"action": "gateway_started", "port": settings.gateway_port}
        )
        yield
        consumer.stop()
        span_writer.stop()
        await pool.close()

    def sse(content: AsyncIterator[Any]) -> EventSourceResponse:
        return EventSourceResponse(
            content,
            ping=settings.ping_seconds,
            send_timeout=settings.send_timeout_seconds,
            # Proxies such as nginx must not buffer a stream.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def run_events(request: Request) -> Response:
        tenant = tenant_of(request)
        run_id = request.path_params["run_id"]
        after = _after(request)
        wanted = _types(request)
        with translate_errors():
            # Subscribed before looking: a run accepted but not created yet (its id
            # says so, roost_core.run_ids) is waited for, and what it does meanwhile
            # is in the log the stream reads from.
            sub = hub.subscribe(Scope(tenant, run_id=run_id), spans=wanted.spans)
            try:
                await _created(log, tenant, run_id)
                last = await log.last_run_event(run_id)
            except BaseException:
                hub.unsubscribe(sub)
                raise
        if after is not None and last is not None and last.ends_run and last.id <= after:
            # The client has everything up to the run's end: 204 tells an EventSource
            # to stop reconnecting.
            hub.unsubscribe(sub)
            return Response(status_code=204)
        return sse(run_stream(hub, log, sub, run_id, after, wanted))

    async def workflow_events(request: Request) -> Response:
        tenant = tenant_of(request)
        name = request.path_params["name"]
        scope = Scope(tenant, workflow=name)
        after, wanted = _after(request), _types(request)
        with translate_errors():
            if not await log.workflow_exists(tenant, name):
                raise UnknownWorkflowError(f"workflow {name!r} not found: no worker registered it")
        return sse(scope_stream(hub, log, hub.subscribe(scope), scope, after, wanted))

    async def tenant_events(request: Request) -> Response:
        tenant = tenant_of(request)
        scope = Scope(tenant)
        after, wanted = _after(request), _types(request)
        return sse(scope_stream(hub, log, hub.subscribe(scope), scope, after, wanted))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def ready(request: Request) -> Response:
        problems = []
        if not consumer.connected.is_set():
            problems.append("not connected to RabbitMQ")
        try:
            async with pool.connection(timeout=2) as conn:
                await conn.execute(_PING)
        except Exception as exc:
            problems.append(f"PostgreSQL unavailable: {type(exc).__name__}")
        body = {"status": "ready" if not problems else "unavailable", "problems": problems}
        body["subscribers"] = hub.subscribers  # type: ignore[assignment]
        return JSONResponse(body, status_code=200 if not problems else 503)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/api/v1/runs/{run_id}/events", run_events, methods=["GET"]),
        Route("/api/v1/workflows/{name}/events", workflow_events, methods=["GET"]),
        Route("/api/v1/events", tenant_events, methods=["GET"]),
    ]
    # EventSource from a dashboard on another origin: allowed, but only with a stream
    # token in the URL (no cookies, no credentials mode).
    middleware = [
        Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET"]),
        Middleware(Authentication, authenticate=bearer_or_stream_token(verifier), public=PUBLIC),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={RoostError: roost_error},
    )


_CREATED_POLL_SECONDS = 0.02


async def _created(log: EventLog, tenant: str, run_id: str) -> None:
    """Return once the run exists; raise UnknownRunError if it does not, after waiting up
    to ACCEPTED_GRACE_SECONDS for one accepted moments ago (its creation normally takes
    milliseconds: a short poll, and only for such an id)."""
    deadline = time.monotonic() + run_ids.ACCEPTED_GRACE_SECONDS
    while await log.run_workflow(tenant, run_id) is None:
        if not run_ids.may_appear(run_id):
            raise UnknownRunError(f"run {run_id!r} not found")
        if time.monotonic() >= deadline:
            raise UnknownRunError(
                f"run {run_id!r} not found: accepted and not created yet"
                " (is the scheduler running?)"
            )
        await asyncio.sleep(_CREATED_POLL_SECONDS)


def _after(request: Request) -> int | None:
    """Where to resume: the Last-Event-ID header, or ?after= (an event id)."""
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise BadRequestError(f"Last-Event-ID / after={raw!r} is not an event id (a whole number)")
    return int(raw)


def _types(request: Request) -> TypeFilter:
    try:
        return TypeFilter(request.query_params.get("types"))
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
