"""Rate-limit keys over HTTP: ``PUT /api/v1/rate-limits/{key}``, list and read them with
their usage, and the trigger-time check that a task can ever be admitted."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from roost_core import admission, outbox
from roost_core.api_models import PutRateLimit
from roost_core.authentication import tenant_of
from roost_core.engine.plan import run_async
from roost_core.errors import BadRequestError, ConflictError, InvalidInputError, NotFoundError
from roost_core.expressions import evaluate_key
from roost_core.queries import SQL
from roost_core.topology import Topology
from roost_core.wire import RATE_LIMIT_KEY_RE, WorkflowDefinition

Conn = AsyncConnection[Any]

DURATIONS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_KEY = re.compile(RATE_LIMIT_KEY_RE)


def window_seconds(duration: str | None) -> int | None:
    """Seconds of a named window, None for a concurrency limit; BadRequestError if bad."""
    if duration is None:
        return None
    if duration not in DURATIONS:
        raise BadRequestError(
            f"duration {duration!r} is not one of {', '.join(DURATIONS)} (or omit it for a"
            " concurrency limit: units held while a task runs)"
        )
    return DURATIONS[duration]


def _window_name(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return next((n for n, s in DURATIONS.items() if s == seconds), f"{seconds}s")


# Usage is counted by the same SQL as the ratelimiter's passes (roost_core's
# units_in_use), so both count alike.
_USAGE = SQL.rate_limits_with_usage
_USAGE_OF_KEY = SQL.rate_limit_with_usage
_SIZES = SQL.rate_limit_sizes
_PUT = SQL.put_rate_limit


def _public(row: dict[str, Any]) -> dict[str, Any]:
    in_use = int(row["in_use"])
    return {
        "key": row["key"],
        "limit": row["limit_value"],
        "window": _window_name(row["window_seconds"]),
        "kind": "concurrency" if row["window_seconds"] is None else "window",
        "units_in_use": in_use,
        "units_left": max(0, row["limit_value"] - in_use),
        "waiting": int(row["waiting"]),
        "updated_at": row["updated_at"].isoformat(),
    }


async def list_limits(conn: Conn, tenant_id: str, key: str | None = None) -> list[dict[str, Any]]:
    query = _USAGE if key is None else _USAGE_OF_KEY
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, {"tenant_id": tenant_id, "key": key})
        return [_public(r) for r in await cur.fetchall()]


async def check_admissible(
    conn: Conn, tenant_id: str, definition: WorkflowDefinition, inputs: Sequence[Any]
) -> None:
    """Refuse a trigger whose tasks could never be admitted: a named key that does not
    exist or is smaller than what a task takes, or a dynamic key whose expression gives
    no valid key for an input (422 naming the expression and the run's index). Costs
    nothing for workflows without limits."""
    wanted: set[tuple[str, str, int]] = set()
    for task in definition.by_name.values():
        for use in task.rate_limits:
            if use.key is not None:
                wanted.add((task.name, use.key, use.units))
            elif use.dynamic_key is not None:
                for index, run_input in enumerate(inputs):
                    try:
                        evaluate_key(use.dynamic_key, run_input)
                    except ValueError as exc:
                        where = f"runs[{index}]: " if len(inputs) > 1 else ""
                        raise InvalidInputError(f"{where}task {task.name!r}: {exc}") from None
    if not wanted:
        return
    cur = await conn.execute(
        _SIZES, {"tenant_id": tenant_id, "keys": sorted({k for _, k, _ in wanted})}
    )
    limits = {key: limit for key, limit in await cur.fetchall()}
    for task_name, key, units in sorted(wanted):
        if key not in limits:
            raise ConflictError(
                f"task {task_name!r} of workflow {definition.name!r} uses rate limit {key!r},"
                f" which does not exist: create it first (roost.rate_limits.put({key!r},"
                " limit=N) or PUT /api/v1/rate-limits/{key})"
            )
        if units > limits[key]:
            raise ConflictError(
                f"task {task_name!r} of workflow {definition.name!r} needs {units} units of rate"
                f" limit {key!r}, whose limit is {limits[key]}: it could never run"
            )


def routes(
    pool: AsyncConnectionPool[Any],
    topology: Topology,
    relay: outbox.OutboxRelay,
    json_body: Callable[[Request], Awaitable[Any]],
) -> list[Route]:
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
        seconds = window_seconds(body.duration)
        async with pool.connection() as conn:
            async with conn.transaction():
                await conn.execute(
                    _PUT,
                    {
                        "tenant_id": tenant,
                        "key": key,
                        "limit": body.limit,
                        "window_seconds": seconds,
                    },
                )
                async with conn.cursor() as c:
                    rows = await run_async(c, outbox.insert([admission.wake(topology)]))
            relay.submit(rows)  # a raised limit may admit waiting tasks at once
            (found,) = await list_limits(conn, tenant, key)
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
        async with pool.connection() as conn:
            found = await list_limits(conn, tenant, key)
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
        async with pool.connection() as conn:
            return JSONResponse({"rate_limits": await list_limits(conn, tenant)})

    return [
        Route("/api/v1/rate-limits", list_all, methods=["GET"]),
        Route("/api/v1/rate-limits/{key:path}", put_limit, methods=["PUT"]),
        Route("/api/v1/rate-limits/{key:path}", get_limit, methods=["GET"]),
    ]
