"""Rate-limit keys: create or change one (waking the ratelimiter), list and read them
with their usage, and the trigger-time check that a task can ever be admitted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from roost_core import admission, outbox
from roost_core.engine.plan import run_async
from roost_core.errors import BadRequestError, ConflictError, InvalidInputError
from roost_core.expressions import evaluate_key
from roost_core.queries import SQL
from roost_core.topology import Topology
from roost_core.wire import WorkflowDefinition

Conn = AsyncConnection[Any]

DURATIONS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


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
        "on_full": row["on_full"],
        "updated_at": row["updated_at"].isoformat(),
    }


async def list_limits(conn: Conn, tenant_id: str, key: str | None = None) -> list[dict[str, Any]]:
    query = _USAGE if key is None else _USAGE_OF_KEY
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, {"tenant_id": tenant_id, "key": key})
        return [_public(r) for r in await cur.fetchall()]


def check_dynamic_keys(definition: WorkflowDefinition, inputs: Sequence[Any]) -> None:
    """Refuse inputs for which a dynamic key's expression gives no valid key (422 naming
    the expression and, for several inputs, the run's index). Needs no database."""
    for task in definition.by_name.values():
        expressions = [u.dynamic_key for u in task.rate_limits if u.dynamic_key is not None]
        expressions += [c.expression for c in task.concurrency]  # task-level concurrency
        for expression in expressions:
            for index, run_input in enumerate(inputs):
                try:
                    evaluate_key(expression, run_input)
                except ValueError as exc:
                    where = f"runs[{index}]: " if len(inputs) > 1 else ""
                    raise InvalidInputError(f"{where}task {task.name!r}: {exc}") from None


def uses_named_limits(definition: WorkflowDefinition) -> bool:
    """Whether a task of ``definition`` takes units of a named rate limit (whose
    existence a trigger checks in PostgreSQL: check_admissible)."""
    return any(use.key is not None for task in definition.tasks for use in task.rate_limits)


async def check_admissible(
    conn: Conn, tenant_id: str, definition: WorkflowDefinition, inputs: Sequence[Any]
) -> None:
    """Refuse a trigger whose tasks could never be admitted: a named key that does not
    exist or is smaller than what a task takes, or a dynamic key whose expression gives
    no valid key for an input (422 naming the expression and the run's index). Costs
    nothing for workflows without limits."""
    check_dynamic_keys(definition, inputs)
    wanted = {
        (task.name, use.key, use.units)
        for task in definition.by_name.values()
        for use in task.rate_limits
        if use.key is not None
    }
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


async def put_limit(
    conn: Conn, topology: Topology, tenant_id: str, key: str, limit: int, seconds: int | None
) -> list[outbox.OutboxRow]:
    """Create or change ``key`` and wake the ratelimiter (a raised limit may admit waiting
    tasks at once); returns the outbox rows for the caller to relay after commit."""
    await conn.execute(
        _PUT, {"tenant_id": tenant_id, "key": key, "limit": limit, "window_seconds": seconds}
    )
    async with conn.cursor() as c:
        return await run_async(c, outbox.insert([admission.wake(topology)]))
