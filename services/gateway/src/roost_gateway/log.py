"""Reads of the durable event log: the backlog a subscriber missed, and gaps."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg_pool import AsyncConnectionPool

from roost_core import span_store, spans
from roost_core.events import Event
from roost_gateway.statements import SQL

_RUN_WORKFLOW = SQL.run_workflow
_WORKFLOW_EXISTS = SQL.workflow_exists
_LAST_RUN_EVENT = SQL.last_run_event
_SEQ_AT = SQL.seq_at
_RUN_PAGE = SQL.run_events_page
_WORKFLOW_PAGE = SQL.workflow_events_page
_TENANT_PAGE = SQL.tenant_events_page
_LAST_ID = SQL.last_event_id


def _event(row: tuple[Any, ...]) -> Event:
    return Event(
        id=row[0],
        seq=row[1],
        tenant_id=str(row[2]),
        run_id=str(row[3]),
        workflow=row[4],
        type=row[5],
        task=row[6],
        attempt=row[7],
        data=row[8],
        at=float(row[9]),
    )


class EventLog:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def run_workflow(self, tenant_id: str, run_id: str) -> str | None:
        """The workflow of a run of this tenant, or None if there is no such run."""
        try:
            uuid.UUID(run_id)
        except ValueError:
            return None
        async with self._pool.connection() as conn:
            cur = await conn.execute(_RUN_WORKFLOW, {"run_id": run_id, "tenant_id": tenant_id})
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def workflow_exists(self, tenant_id: str, name: str) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(_WORKFLOW_EXISTS, {"tenant_id": tenant_id, "name": name})
            return await cur.fetchone() is not None

    async def last_run_event(self, run_id: str) -> Event | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(_LAST_RUN_EVENT, {"run_id": run_id})
            row = await cur.fetchone()
        return None if row is None else _event(row)

    async def seq_at(self, run_id: str, event_id: int) -> int:
        """The seq of the run's last event with an id at most ``event_id`` (0: none)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_SEQ_AT, {"run_id": run_id, "event_id": event_id})
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def run_page(
        self, run_id: str, after_seq: int, limit: int, before_seq: int | None = None
    ) -> list[Event]:
        """A run's events after ``after_seq`` (and before ``before_seq``), in order."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                _RUN_PAGE,
                {
                    "run_id": run_id,
                    "after_seq": after_seq,
                    "before_seq": before_seq or 2**31 - 1,
                    "limit": limit,
                },
            )
            return [_event(r) for r in await cur.fetchall()]

    async def scope_page(
        self, tenant_id: str, workflow: str | None, after_id: int, limit: int
    ) -> list[Event]:
        """A workflow's (or, with None, the tenant's) events after ``after_id``."""
        async with self._pool.connection() as conn:
            if workflow is not None:
                cur = await conn.execute(
                    _WORKFLOW_PAGE,
                    {
                        "workflow": workflow,
                        "tenant_id": tenant_id,
                        "after_id": after_id,
                        "limit": limit,
                    },
                )
            else:
                cur = await conn.execute(
                    _TENANT_PAGE, {"tenant_id": tenant_id, "after_id": after_id, "limit": limit}
                )
            return [_event(r) for r in await cur.fetchall()]

    async def last_id(self) -> int:
        """The newest event id: where a live-only stream starts."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_LAST_ID)
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def run_spans(self, run_id: str) -> list[spans.SpanRecord]:
        """The run's spans stored so far, in start order."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(span_store.RUN_SPANS, {"run_id": run_id})
            return [span_store.from_row(r) for r in await cur.fetchall()]
