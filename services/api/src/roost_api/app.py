"""The api's application: a versioned JSON API under /api/v1, plus /health, /ready and
/metrics. Endpoints are module-level functions grouped by resource in
``roost_api.endpoints``; what they share (``roost_api.resources``) is made here, once.
Every route but the public ones needs an API token (``roost_core.authentication``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from psycopg import errors as pg_errors
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import metrics as api_metrics
from roost_api import openapi, store
from roost_api.accept import Acceptor
from roost_api.endpoints import (
    approvals,
    events,
    operations,
    rate_limits,
    runs,
    schedules,
    workflows,
)
from roost_api.resources import Declarer, Resources
from roost_api.served import ServedWorkflows
from roost_api.settings import ApiSettings
from roost_api.trigger_batch import TriggerBatcher
from roost_api.waiters import RunWaiters
from roost_core.auth import TokenVerifier
from roost_core.authentication import Authentication, bearer_token, error_response
from roost_core.db import async_pool, translate_errors
from roost_core.errors import BadRequestError, RoostError
from roost_core.outbox import OutboxRelay
from roost_core.topology import Topology

logger = logging.getLogger(__name__)

# What needs no token: the probes, the metrics and the API's own description.
PUBLIC = frozenset({"/health", "/ready", "/metrics", "/api/v1/openapi.json"})


async def roost_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RoostError)
    return error_response(request, exc)


async def database_error(request: Request, exc: Exception) -> Response:
    """A driver error an endpoint let through, as the Roost error it stands for."""
    try:
        with translate_errors():
            raise exc
    except RoostError as translated:
        return error_response(request, translated)


async def unstorable_value(request: Request, exc: Exception) -> Response:
    """A value PostgreSQL cannot hold (a NUL in a path or query parameter, say): the
    request's fault, said as such, not a server error."""
    return error_response(
        request, BadRequestError(f"the request holds a value that cannot be stored: {exc}")
    )


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no route) and 405 (a method the path lacks), with the JSON
    error body every other error has (and the 405's Allow header)."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def create_app(settings: ApiSettings) -> Starlette:
    topology = Topology(settings.namespace)
    pool = async_pool(settings.database_url, settings.db_pool_size)
    relay = OutboxRelay(settings.broker_url, settings.database_url, name="api-outbox-relay")
    res = Resources(
        settings=settings,
        topology=topology,
        pool=pool,
        verifier=TokenVerifier(pool, settings.token_cache_seconds),
        relay=relay,
        declarer=Declarer(settings.broker_url, topology),
        waiters=RunWaiters(settings.database_url),
        versions=store.VersionCache(),
        triggers=TriggerBatcher(pool, topology, relay),
        acceptor=Acceptor(settings.broker_url, topology),
        served=ServedWorkflows(pool, settings.worker_heartbeat_timeout_seconds),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await res.pool.open(wait=False)
        res.relay.start()
        res.acceptor.start()
        await res.waiters.start()
        logger.info("api ready", extra={"action": "api_started", "port": settings.api_port})
        yield
        await res.triggers.drain()
        res.acceptor.stop()
        await res.waiters.stop()
        res.relay.stop()
        res.declarer.close()
        await res.pool.close()

    routes: list[BaseRoute] = [
        *rate_limits.ROUTES,
        # Prometheus' text format, for scrapers: not part of the JSON API's document.
        Route("/metrics", api_metrics.metrics_endpoint, methods=["GET"], include_in_schema=False),
        *operations.ROUTES,
        *workflows.ROUTES,
        *runs.ROUTES,
        *events.ROUTES,
        *schedules.ROUTES,
        *approvals.ROUTES,
    ]
    # Made once, from the routes' declarations (roost_api.openapi); a route left
    # undeclared fails here, at start, not in a client generated later.
    document = openapi.document(routes, title="Roost API", version="1")

    async def openapi_document(request: Request) -> Response:
        return JSONResponse(document)

    routes.append(
        Route("/api/v1/openapi.json", openapi_document, methods=["GET"], include_in_schema=False)
    )

    authentication = Middleware(
        Authentication, authenticate=bearer_token(res.verifier), public=PUBLIC
    )
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[authentication],
        exception_handlers={
            RoostError: roost_error,
            psycopg.OperationalError: database_error,
            pg_errors.UniqueViolation: database_error,
            psycopg.DataError: unstorable_value,
            HTTPException: http_error,
        },
    )
    app.state.roost = res
    app.state.gauges = api_metrics.FleetGauges(
        pool,
        settings.metrics_refresh_seconds,
        settings.worker_heartbeat_timeout_seconds,
        res.declarer.ready_counts,
        topology.task_queue,
    )
    return app
