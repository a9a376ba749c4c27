"""Crons and scheduled runs (issue #19): made, read, paused, rescheduled and cancelled
here; fired by the scheduler (roost_core.engine.fire). Times are the database's clock,
which the scheduler fires by."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from roost_api.statements import SQL
from roost_api.store.common import Conn, iso
from roost_core import crons
from roost_core.errors import ConflictError, NotFoundError
from roost_core.schedule_models import CronCreate
from roost_core.wire import WorkflowDefinition

_CLOCK = SQL.db_clock
_INSERT_CRON = SQL.insert_cron
_GET_CRON = SQL.get_cron
_LIST_CRONS = SQL.list_crons
_RECENT_RUNS = SQL.cron_recent_runs
_LOCK_CRON = SQL.lock_cron
_SET_PAUSED = SQL.set_cron_paused
_DELETE_CRON = SQL.delete_cron
_REMOVE_DECLARED = SQL.remove_declared_crons
_UPSERT_DECLARED = SQL.upsert_declared_crons
_INSERT_SCHEDULED = SQL.insert_scheduled_run
_GET_SCHEDULED = SQL.get_scheduled_run
_LIST_SCHEDULED = SQL.list_scheduled_runs
_RESCHEDULE = SQL.reschedule_run
_CANCEL_SCHEDULED = SQL.cancel_scheduled_run

RECENT_RUNS = 10


class UnknownCronError(NotFoundError):
    """No cron of the tenant's has this id."""


class UnknownScheduledRunError(NotFoundError):
    """No scheduled run of the tenant's has this id."""


async def clock(conn: Conn) -> datetime:
    cur = await conn.execute(_CLOCK)
    row = await cur.fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def create_cron(
    conn: Conn, tenant_id: str, workflow_id: str, body: CronCreate
) -> dict[str, Any]:
    """A cron made at run time; its first fire time is the next after now. The caller
    has checked the expression, zone and policy (roost_core.crons)."""
    next_at = crons.next_fire(body.expression, body.timezone, await clock(conn))
    cron_id = uuid.uuid4()
    cur = await conn.execute(
        _INSERT_CRON,
        {
            "id": cron_id,
            "tenant_id": tenant_id,
            "workflow_id": workflow_id,
            "name": body.name,
            "expression": body.expression,
            "timezone": body.timezone,
            "input": Jsonb(body.input),
            "metadata": Jsonb(body.metadata),
            "catch_up": body.catch_up,
            "paused": body.paused,
            "next_fire_at": next_at,
        },
    )
    if await cur.fetchone() is None:
        raise ConflictError(
            f"workflow {body.workflow!r} already has a cron named {body.name!r}: "
            "delete it first, or choose another name"
        )
    return await get_cron(conn, tenant_id, str(cron_id), with_runs=False)


async def get_cron(
    conn: Conn, tenant_id: str, cron_id: str, with_runs: bool = True
) -> dict[str, Any]:
    _check_uuid(cron_id, "cron")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_GET_CRON, {"tenant_id": tenant_id, "id": cron_id})
        row = await cur.fetchone()
        if row is None:
            raise UnknownCronError(f"cron {cron_id} not found")
        cron = _cron(row)
        if with_runs:
            await cur.execute(_RECENT_RUNS, {"id": cron_id, "limit": RECENT_RUNS})
            cron["recent_runs"] = [
                {"fire_at": iso(r["fire_at"]), "run_id": str(r["run_id"]), "status": r["status"]}
                for r in await cur.fetchall()
            ]
    return cron


async def list_crons(
    conn: Conn,
    tenant_id: str,
    workflow: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[dict[str, Any]]:
    rows = await _page(conn, _LIST_CRONS, tenant_id, workflow, limit, after, {})
    return [_cron(r) for r in rows]


async def set_paused(conn: Conn, tenant_id: str, cron_id: str, paused: bool) -> dict[str, Any]:
    """Pause a cron, or resume it: from its next fire time after now (a paused cron's
    fire times are skipped, not caught up)."""
    _check_uuid(cron_id, "cron")
    cur = await conn.execute(_LOCK_CRON, {"tenant_id": tenant_id, "id": cron_id})
    row = await cur.fetchone()
    if row is None:
        raise UnknownCronError(f"cron {cron_id} not found")
    expression, timezone, _, was_paused = row
    next_at = None
    if not paused and was_paused:
        next_at = crons.next_fire(expression, timezone, await clock(conn))
    await conn.execute(_SET_PAUSED, {"id": cron_id, "paused": paused, "next_fire_at": next_at})
    return await get_cron(conn, tenant_id, cron_id)


async def delete_cron(conn: Conn, tenant_id: str, cron_id: str) -> None:
    _check_uuid(cron_id, "cron")
    cur = await conn.execute(_LOCK_CRON, {"tenant_id": tenant_id, "id": cron_id})
    row = await cur.fetchone()
    if row is None:
        raise UnknownCronError(f"cron {cron_id} not found")
    if row[2]:
        raise ConflictError(
            f"cron {cron_id} is declared by its workflow's on_crons: remove it there "
            "(the next version registered drops it), or pause it"
        )
    await conn.execute(_DELETE_CRON, {"id": cron_id})


async def sync_declared(
    conn: Conn, tenant_id: str, workflow_id: str, definition: WorkflowDefinition
) -> None:
    """Make the workflow's declared crons those of ``definition`` (its newest version),
    in the caller's transaction: dropped expressions stop, new ones start from their
    next fire time, kept ones keep their schedule."""
    names = list(definition.on_crons)
    await conn.execute(_REMOVE_DECLARED, {"workflow_id": workflow_id, "names": names})
    if not names:
        return
    now = await clock(conn)
    await conn.execute(
        _UPSERT_DECLARED,
        {
            "tenant_id": tenant_id,
            "workflow_id": workflow_id,
            "input": Jsonb(definition.cron_input if definition.cron_input is not None else {}),
            "ids": [uuid.uuid4() for _ in names],
            "names": names,
            "next_ats": [crons.next_fire(n, "UTC", now) for n in names],
        },
    )


async def create_scheduled(
    conn: Conn,
    tenant_id: str,
    workflow_id: str,
    at: datetime | None,
    delay: float | None,
    run_input: Any,
    metadata: dict[str, str],
) -> dict[str, Any]:
    scheduled_id = uuid.uuid4()
    await conn.execute(
        _INSERT_SCHEDULED,
        {
            "id": scheduled_id,
            "tenant_id": tenant_id,
            "workflow_id": workflow_id,
            "at": at,
            "delay": delay,
            "input": Jsonb(run_input),
            "metadata": Jsonb(metadata),
        },
    )
    return await get_scheduled(conn, tenant_id, str(scheduled_id))


async def get_scheduled(conn: Conn, tenant_id: str, scheduled_id: str) -> dict[str, Any]:
    _check_uuid(scheduled_id, "scheduled run")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_GET_SCHEDULED, {"tenant_id": tenant_id, "id": scheduled_id})
        row = await cur.fetchone()
    if row is None:
        raise UnknownScheduledRunError(f"scheduled run {scheduled_id} not found")
    return _scheduled(row)


async def list_scheduled(
    conn: Conn,
    tenant_id: str,
    workflow: str | None,
    status: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[dict[str, Any]]:
    rows = await _page(conn, _LIST_SCHEDULED, tenant_id, workflow, limit, after, {"status": status})
    return [_scheduled(r) for r in rows]


async def _page(
    conn: Conn,
    statement: str,
    tenant_id: str,
    workflow: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
    more: dict[str, Any],
) -> list[dict[str, Any]]:
    """A page of a keyset-paginated listing, after the (time, id) ``after``."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            statement,
            {
                "tenant_id": tenant_id,
                "workflow": workflow,
                "after_at": after[0] if after else None,
                "after_id": after[1] if after else None,
                "limit": limit,
                **more,
            },
        )
        return await cur.fetchall()


async def reschedule(
    conn: Conn, tenant_id: str, scheduled_id: str, at: datetime | None, delay: float | None
) -> dict[str, Any]:
    _check_uuid(scheduled_id, "scheduled run")
    cur = await conn.execute(
        _RESCHEDULE, {"tenant_id": tenant_id, "id": scheduled_id, "at": at, "delay": delay}
    )
    if await cur.fetchone() is None:
        raise _not_pending(await get_scheduled(conn, tenant_id, scheduled_id), "reschedule")
    return await get_scheduled(conn, tenant_id, scheduled_id)


async def cancel_scheduled(conn: Conn, tenant_id: str, scheduled_id: str) -> dict[str, Any]:
    _check_uuid(scheduled_id, "scheduled run")
    cur = await conn.execute(_CANCEL_SCHEDULED, {"tenant_id": tenant_id, "id": scheduled_id})
    if await cur.fetchone() is None:
        raise _not_pending(await get_scheduled(conn, tenant_id, scheduled_id), "cancel")
    return await get_scheduled(conn, tenant_id, scheduled_id)


def _not_pending(found: dict[str, Any], what: str) -> ConflictError:
    if found["status"] == "FIRED":
        return ConflictError(
            f"cannot {what} scheduled run {found['id']}: it fired already, as run {found['run_id']}"
        )
    if found["status"] == "FAILED":
        return ConflictError(
            f"cannot {what} scheduled run {found['id']}: it failed to fire: {found['error']}"
        )
    return ConflictError(f"cannot {what} scheduled run {found['id']}: it was cancelled")


def _cron(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "id": str(row["id"]),
        "next_fire_at": iso(row["next_fire_at"]),
        "last_fire_at": iso(row["last_fire_at"]),
        "created_at": iso(row["created_at"]),
    }


def _scheduled(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "id": str(row["id"]),
        "run_id": str(row["run_id"]) if row["run_id"] else None,
        "trigger_at": iso(row["trigger_at"]),
        "created_at": iso(row["created_at"]),
        "fired_at": iso(row["fired_at"]),
    }


def _check_uuid(value: str, what: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise NotFoundError(f"{what} {value!r} not found: not an id") from None
