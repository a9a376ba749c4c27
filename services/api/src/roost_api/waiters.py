"""Long-poll support: wake requests waiting for a run to end.

The transaction that ends a run sends ``NOTIFY roost_run_final, '<run id>'``
(roost_core.engine.record.notify_final), so PostgreSQL delivers it only after commit;
one LISTEN connection per api process fans it out to the waiting requests. No polling
loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import psycopg

from roost_core.engine.record import RUN_FINAL_CHANNEL

logger = logging.getLogger(__name__)

CHANNEL = RUN_FINAL_CHANNEL


class RunWaiters:
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._waiting: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 5)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    @contextlib.contextmanager
    def watch(self, run_id: str) -> Any:
        """Register interest in ``run_id`` before reading it, so no NOTIFY is missed."""
        event = asyncio.Event()
        self._waiting[run_id].add(event)
        try:
            yield event
        finally:
            events = self._waiting.get(run_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiting[run_id]

    async def _listen(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    # Wake everyone after a reconnect: a NOTIFY may have been missed.
                    self._wake_all()
                    async for payload in _received(conn):
                        for event in self._waiting.get(payload, ()):
                            event.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning(
                    "run listener lost its connection; reconnecting",
                    extra={"action": "listener_reconnect"},
                    exc_info=True,
                )
                self._ready.set()
                self._wake_all()
                await asyncio.sleep(1)

    def _wake_all(self) -> None:
        for events in self._waiting.values():
            for event in events:
                event.set()


async def _received(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[str]:
    """The payloads of the NOTIFYs ``conn`` receives, read when its socket has data.

    psycopg's ``notifies()`` wakes every 0.1 s to look (its wait interval): ten wake-ups
    a second in an idle api (issue #17's idle budget). The event loop's reader wakes
    only when PostgreSQL sends something. A lost connection raises from
    ``consume_input`` (psycopg.OperationalError), and the listener reconnects."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    fd = conn.pgconn.socket
    loop.add_reader(fd, readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            conn.pgconn.consume_input()
            while (note := conn.pgconn.notifies()) is not None:
                yield note.extra.decode()
    finally:
        loop.remove_reader(fd)
