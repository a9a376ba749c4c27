"""Pushed events: storing them with the runs their keys start, and reading them back."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from roost_api.statements import SQL
from roost_api.store.common import Conn, iso
from roost_api.store.create import RunRequest, create_runs
from roost_api.store.workflows import WorkflowVersion
from roost_core import outbox
from roost_core.errors import (
    NotFoundError,
)
from roost_core.topology import Topology


@dataclass(frozen=True)
class EventRequest:
    key: str
    data: Any
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Pushed:
    events: list[dict[str, Any]]  # one per request, in order, as the api returns them
    outbox_rows: list[outbox.OutboxRow]  # to publish after commit


async def push_events(
    conn: Conn,
    topology: Topology,
    tenant_id: str,
    plans: list[tuple[EventRequest, list[WorkflowVersion]]],
) -> Pushed | None:
    """Store pushed events, each with a run of every workflow version it matched, in the
    caller's transaction: one ``create_runs`` per workflow (all its events at once) and
    one insert for the events. Returns None, having stored events the caller must roll
    back, when a concurrent request stored an event with one of these idempotency keys
    first."""
    runs_of: list[list[dict[str, str]]] = [[] for _ in plans]
    by_version: dict[str, tuple[WorkflowVersion, list[int]]] = {}
    for index, (_, matched) in enumerate(plans):
        for wv in matched:
            by_version.setdefault(wv.version_id, (wv, []))[1].append(index)
    rows: list[outbox.OutboxRow] = []
    ids = [uuid.uuid4() for _ in plans]
    for wv, indexes in sorted(by_version.values(), key=lambda v: v[0].definition.name):
        # Each run an event starts carries the event's id and key in its metadata.
        requests = [
            RunRequest(
                plans[i][0].data,
                metadata={"event_id": str(ids[i]), "event_key": plans[i][0].key},
            )
            for i in indexes
        ]
        started = await create_runs(conn, topology, tenant_id, wv, requests)
        rows.extend(started.outbox_rows)
        for index, run in zip(indexes, started.runs, strict=True):
            runs_of[index].append({"id": run.run_id, "workflow": wv.definition.name})
    cur = await conn.execute(
        _INSERT_PUSHED,
        {
            "tenant_id": tenant_id,
            "ids": ids,
            "keys": [r.key for r, _ in plans],
            "data": [json.dumps(r.data) for r, _ in plans],
            "idempotency_keys": [r.idempotency_key for r, _ in plans],
            "run_ids": [",".join(run["id"] for run in runs) for runs in runs_of],
        },
    )
    created = {row[0]: row[1] for row in await cur.fetchall()}
    if len(created) != len(plans):
        return None
    return Pushed(
        [
            {
                "id": str(event_id),
                "key": request.key,
                "data": request.data,
                "idempotency_key": request.idempotency_key,
                "created_at": iso(created[event_id]),
                "runs": runs,
            }
            for event_id, (request, _), runs in zip(ids, plans, runs_of, strict=True)
        ],
        rows,
    )


_INSERT_PUSHED = SQL.insert_pushed_events
_PUSHED_EVENT = SQL.pushed_event
_BY_IDEMPOTENCY_KEY = SQL.pushed_events_by_idempotency_key
_BY_ID = SQL.pushed_event_by_id


def _pushed_event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "key": row["key"],
        "data": row["data"],
        "idempotency_key": row["idempotency_key"],
        "created_at": iso(row["created_at"]),
        "runs": row["runs"],
    }


async def pushed_events_by_idempotency_key(
    conn: Conn, tenant_id: str, keys: list[str]
) -> dict[str, dict[str, Any]]:
    """The tenant's pushed events with these idempotency keys, by key."""
    if not keys:
        return {}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_BY_IDEMPOTENCY_KEY, {"tenant_id": tenant_id, "keys": keys})
        return {r["idempotency_key"]: _pushed_event(r) for r in await cur.fetchall()}


async def get_pushed_event(conn: Conn, tenant_id: str, event_id: str) -> dict[str, Any]:
    """A pushed event with the runs it started; NotFoundError if the tenant has none."""
    try:
        uuid.UUID(event_id)
    except ValueError:
        raise NotFoundError(f"pushed event {event_id!r} not found: not an event id") from None
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_BY_ID, {"tenant_id": tenant_id, "id": event_id})
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"pushed event {event_id!r} not found")
    return _pushed_event(row)


async def list_pushed_events(
    conn: Conn,
    tenant_id: str,
    key: str | None,
    limit: int,
    cursor: tuple[datetime, str] | None,
) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated on (created_at, id); only ``key``'s if given."""
    # Built here, from the named fragment: only the filters given go in the WHERE, so each
    # combination gets a plan of its own for the (tenant_id, created_at, id) keyset index
    # (a fixed statement with "%(key)s IS NULL OR ..." would get one generic plan).
    query = _PUSHED_EVENT
    if key:
        query += " AND e.key = %(key)s"
    if cursor:
        query += " AND (e.created_at, e.id) < (%(after_at)s, %(after_id)s)"
    query += " ORDER BY e.created_at DESC, e.id DESC LIMIT %(limit)s"
    after_at, after_id = cursor or (None, None)
    params = {
        "tenant_id": tenant_id,
        "key": key,
        "after_at": after_at,
        "after_id": after_id,
        "limit": limit,
    }
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [_pushed_event(r) for r in await cur.fetchall()]
