"""Rate-limit keys over HTTP: ``PUT /api/v1/rate-limits/{key}``, and list and read them
with their usage."""

from __future__ import annotations

import re

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import store
from roost_api.http import json_body
from roost_api.resources import resources
from roost_core.api_models import PutRateLimit
from roost_core.authentication import tenant_of
from roost_core.errors import BadRequestError, NotFoundError
from roost_core.wire import RATE_LIMIT_KEY_RE

_KEY = re.compile(RATE_LIMIT_KEY_RE)


async def put_limit(request: Request) -> Response:
    """
    summary: Create or change a rate-limit key
    description: >-
      Body {"limit": N, "duration": "second"|"minute"|"hour"|"day"}; without a
      duration the key is a concurrency limit (units held while a task runs). A change
      takes effect at once: lowering a limit admits nothing new until usage is below it.
    responses:
      200: {description: the key with its usage}
      400: {description: a bad key, limit or duration}
    """
    res = resources(request)
    tenant = tenant_of(request)
    key = request.path_params["key"]
    if not _KEY.match(key):
        raise BadRequestError(
            f"rate limit key {key!r} must be 1-200 characters: letters, digits and _.:/@-"
        )
    try:
        body = PutRateLimit.model_validate(await json_body(request))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequestError(f"invalid rate limit: {where}: {first['msg']}") from None
    seconds = store.window_seconds(body.duration)
    async with res.pool.connection() as conn:
        async with conn.transaction():
            rows = await store.put_limit(conn, res.topology, tenant, key, body.limit, seconds)
        res.relay.submit(rows)
        (found,) = await store.list_limits(conn, tenant, key)
    return JSONResponse(found)


async def get_limit(request: Request) -> Response:
    """
    summary: One rate-limit key with its usage
    responses:
      200: {description: "key, limit, window, units_in_use, units_left, waiting"}
      404: {description: no such key}
    """
    tenant = tenant_of(request)
    key = request.path_params["key"]
    async with resources(request).pool.connection() as conn:
        found = await store.list_limits(conn, tenant, key)
    if not found:
        raise NotFoundError(f"rate limit {key!r} not found")
    return JSONResponse(found[0])


async def list_all(request: Request) -> Response:
    """
    summary: Every rate-limit key with its usage and the tasks waiting on it
    responses:
      200: {description: "{rate_limits: [...]}"}
    """
    tenant = tenant_of(request)
    async with resources(request).pool.connection() as conn:
        return JSONResponse({"rate_limits": await store.list_limits(conn, tenant)})


ROUTES: list[BaseRoute] = [
    Route("/api/v1/rate-limits", list_all, methods=["GET"]),
    Route("/api/v1/rate-limits/{key:path}", put_limit, methods=["PUT"]),
    Route("/api/v1/rate-limits/{key:path}", get_limit, methods=["GET"]),
]
