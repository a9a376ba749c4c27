"""The transactional outbox: write what to publish in the same transaction as the state
change, publish right after commit, delete on the broker's confirm.

Two paths publish outbox rows:

* the fast path, :class:`OutboxRelay`: the process that committed hands the rows it just
  wrote to a background thread that publishes them at once;
* the sweeper, :func:`sweep`: republishes rows a crash left behind (older than a grace
  period), so nothing committed is ever lost.

Both may publish the same row (a relay slower than the grace period); every consumer is
idempotent, so a duplicate changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import psycopg
from pika.adapters.blocking_connection import BlockingChannel

from roost_core import broker
from roost_core.topology import declare_task_queue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxMessage:
    """One message to publish: to ``exchange`` ("" is the default exchange) by key."""

    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, Any] | None = None


@dataclass(frozen=True)
class OutboxRow:
    id: int
    message: OutboxMessage


def insert(cur: psycopg.Cursor[Any], messages: list[OutboxMessage]) -> list[OutboxRow]:
    """Write ``messages`` to the outbox inside the caller's transaction."""
    if not messages:
        return []
    cur.executemany(
        "INSERT INTO outbox (exchange, routing_key, body, headers) VALUES (%s, %s, %s, %s)"
        " RETURNING id",
        [
            (m.exchange, m.routing_key, m.body, json.dumps(m.headers) if m.headers else None)
            for m in messages
        ],
        returning=True,
    )
    ids: list[int] = []
    while True:
        row = cur.fetchone()
        if row is not None:
            ids.append(row[0])
        if not cur.nextset():
            break
    return [OutboxRow(i, m) for i, m in zip(ids, messages, strict=True)]


async def insert_async(
    cur: psycopg.AsyncCursor[Any], messages: list[OutboxMessage]
) -> list[OutboxRow]:
    """:func:`insert` for an async cursor."""
    rows: list[OutboxRow] = []
    for m in messages:
        await cur.execute(
            "INSERT INTO outbox (exchange, routing_key, body, headers) VALUES (%s, %s, %s, %s)"
            " RETURNING id",
            (m.exchange, m.routing_key, m.body, json.dumps(m.headers) if m.headers else None),
        )
        row = await cur.fetchone()
        assert row is not None
        rows.append(OutboxRow(row[0], m))
    return rows


class Publisher:
    """A confirming publisher on one channel. Not thread-safe: one per thread."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def _open(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            self.close()
            self._connection = broker.connect(self._url)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        return self._channel

    def publish(self, message: OutboxMessage) -> None:
        """Publish and wait for the broker's confirm. An unroutable message to the
        default exchange means its task queue is missing: declare it and publish again."""
        channel = self._open()
        props = pika.BasicProperties(
            delivery_mode=broker.PERSISTENT,
            content_type="application/json",
            headers=message.headers,
        )
        try:
            channel.basic_publish(
                message.exchange, message.routing_key, message.body, props, mandatory=True
            )
        except pika.exceptions.UnroutableError:
            if message.exchange != "":
                raise
            declare_task_queue(channel, message.routing_key)
            channel.basic_publish(
                message.exchange, message.routing_key, message.body, props, mandatory=True
            )

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                self._connection.close()
        self._connection = None
        self._channel = None


class OutboxRelay:
    """The fast path: a background thread that publishes freshly committed outbox rows
    and deletes them once confirmed. ``submit`` never blocks the caller."""

    def __init__(self, broker_url: str, conninfo: str, *, name: str = "outbox-relay") -> None:
        self._publisher = Publisher(broker_url)
        self._conninfo = conninfo
        self._queue: queue.Queue[list[OutboxRow] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._conn: psycopg.Connection[Any] | None = None
        self.published = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, rows: list[OutboxRow]) -> None:
        """Hand rows committed by the caller to the relay (thread-safe)."""
        if rows:
            self._queue.put(rows)

    def stop(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                break
            stop = False
            # Drain whatever else has arrived: one DELETE for all of it.
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.extend(more)
            self._publish_batch(batch)
            if stop:
                break
        self._publisher.close()
        if self._conn is not None:
            self._conn.close()

    def _publish_batch(self, rows: list[OutboxRow]) -> None:
        done: list[int] = []
        try:
            for row in rows:
                self._publisher.publish(row.message)
                done.append(row.id)
        except Exception:
            # What was not published stays in the outbox; the sweeper will send it.
            logger.warning(
                "outbox relay could not publish; the sweeper will retry",
                extra={"action": "outbox_publish_failed", "pending": len(rows) - len(done)},
                exc_info=True,
            )
            self._publisher.close()
        self.published += len(done)
        if done:
            self._delete(done)

    def _delete(self, ids: list[int]) -> None:
        for attempt in range(2):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._conninfo, autocommit=True)
                self._conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", (ids,))
                return
            except psycopg.Error:
                logger.warning(
                    "outbox relay could not delete published rows",
                    extra={"action": "outbox_delete_failed", "attempt": attempt},
                    exc_info=True,
                )
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                time.sleep(0.2)


def sweep(
    conn: psycopg.Connection[Any], publisher: Publisher, older_than_s: float, limit: int = 500
) -> int:
    """Publish outbox rows older than ``older_than_s`` (left by a crash or a failed fast
    path) and delete them. Safe with several sweepers: rows are claimed SKIP LOCKED."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT id, exchange, routing_key, body, headers FROM outbox"
            " WHERE created_at < now() - make_interval(secs => %s)"
            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            (older_than_s, limit),
        ).fetchall()
        if not rows:
            return 0
        for _row_id, exchange, key, body, headers in rows:
            publisher.publish(OutboxMessage(exchange, key, bytes(body), headers))
        conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", ([r[0] for r in rows],))
    logger.info("outbox swept", extra={"action": "outbox_swept", "count": len(rows)})
    return len(rows)
