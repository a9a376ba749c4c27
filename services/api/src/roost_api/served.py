"""Which workflows a live worker serves, so a trigger can warn when none does (#20).

A run of a workflow no live worker serves is still created and queued (workers may
scale up from zero), but its caller is told. Triggers are the hot path, so the answer
is a set lookup: the set is re-read from the ``workers`` table at most every ``TTL``
seconds, by whichever trigger first finds it stale, while concurrent triggers keep
answering from the previous set. A worker's heartbeat row is alive, draining or
stopped; only alive workers heard from within the heartbeat timeout count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psycopg

from roost_api.statements import SQL

logger = logging.getLogger(__name__)

_SERVED = SQL.served_workflows


def unserved_warning(workflow: str) -> str:
    """The ``warning`` a trigger's response carries when no live worker serves it."""
    return f"no live worker serves workflow {workflow!r}: its runs wait until one starts"


class ServedWorkflows:
    """Names of the workflows at least one live worker serves, refreshed lazily."""

    TTL = 2.0

    def __init__(self, pool: Any, heartbeat_timeout: float) -> None:
        self._pool = pool
        self._timeout = heartbeat_timeout
        self._names: frozenset[str] | None = None  # None until first read
        self._read_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None

    async def warning(self, workflow: str) -> str | None:
        """The warning for a trigger of ``workflow``, or None when a live worker serves
        it or it is not known yet (a hint is never worth failing a trigger over)."""
        if time.monotonic() - self._read_at > self.TTL:
            await self._refresh()
        if self._names is None or workflow in self._names:
            return None
        return unserved_warning(workflow)

    async def _refresh(self) -> None:
        # One read in flight per process: the first trigger to find the set stale reads
        # it; the others wait only when there is no set yet, else answer from the old one.
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._read())
        if self._names is None:
            await asyncio.shield(self._refreshing)

    async def _read(self) -> None:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(_SERVED, {"timeout": self._timeout})
                self._names = frozenset(row[0] for row in await cur.fetchall())
        except (psycopg.Error, OSError) as exc:  # the database is away: keep the last set
            logger.warning("served workflows refresh failed", extra={"error": repr(exc)})
        # A failed read is retried after the TTL too, not by every trigger meanwhile.
        self._read_at = time.monotonic()
