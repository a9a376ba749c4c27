"""Rate-limit keys over HTTP: ``PUT /api/v1/rate-limits/{key}``, and list and read them
with their usage."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import store
from roost_api.http import parsed_body
from roost_api.openapi import operation
from roost_api.resources import resources
from roost_api.routing import resource
from roost_core.api_models import PutRateLimit, RateLimitInfo
from roost_core.api_shapes import RateLimitList
from roost_core.authentication import tenant_of
from roost_core.errors import BadRequestError, NotFoundError
from roost_core.wire import RATE_LIMIT_KEY_RE

_KEY = re.compile(RATE_LIMIT_KEY_RE)


@operation(
    "Create or change a rate-limit key",
    tag="rate-limits",
    description=(
        "Without a duration the key is a concurrency limit (units held while a task "
        "runs). A change takes effect at once: lowering a limit admits nothing new until "
        "usage is below it."
    ),
    body=PutRateLimit,
    ok={200: ("the key with its usage", RateLimitInfo)},
)
async def put_limit(request: Request) -> Response:
    res = resources(request)
    tenant = tenant_of(request)
    key = request.path_params["key"]
    if not _KEY.match(key):
        raise BadRequestError(
            f"rate limit key {key!r} must be 1-200 characters: letters, digits and _.:/@-"
        )
    body = await parsed_body(request, PutRateLimit, "invalid rate limit")
    seconds = store.window_seconds(body.duration)
    async with res.pool.connection() as conn:
        async with conn.transaction():
            rows = await store.put_limit(conn, res.topology, tenant, key, body.limit, seconds)
        res.relay.submit(rows)
        (found,) = await store.list_limits(conn, tenant, key)
    return JSONResponse(found)


@operation(
    "One rate-limit key with its usage",
    tag="rate-limits",
    ok={200: ("the key with its usage", RateLimitInfo)},
    errors={404: "no such key"},
)
async def get_limit(request: Request) -> Response:
    tenant = tenant_of(request)
    key = request.path_params["key"]
    async with resources(request).pool.connection() as conn:
        found = await store.list_limits(conn, tenant, key)
    if not found:
        raise NotFoundError(f"rate limit {key!r} not found")
    return JSONResponse(found[0])


@operation(
    "Every rate-limit key with its usage and the tasks waiting on it",
    tag="rate-limits",
    ok={200: ("the keys", RateLimitList)},
    operation_id="list_rate_limits",
)
async def list_all(request: Request) -> Response:
    tenant = tenant_of(request)
    async with resources(request).pool.connection() as conn:
        return JSONResponse({"rate_limits": await store.list_limits(conn, tenant)})


ROUTES: list[BaseRoute] = [
    Route("/api/v1/rate-limits", list_all, methods=["GET"]),
    resource("/api/v1/rate-limits/{key:path}", PUT=put_limit, GET=get_limit),
]
