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
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import psycopg
from pika.adapters.blocking_connection import BlockingChannel

from roost_core import broker, fastjson, stale_messages
from roost_core.admission_request import Admission as Admission
from roost_core.admission_request import DynamicKey as DynamicKey
from roost_core.admission_request import OnFull as OnFull
from roost_core.engine.plan import Plan, Statement
from roost_core.queries import SQL
from roost_core.topology import declare_task_queue

logger = logging.getLogger(__name__)


_CONNECTION_LOST = (
    pika.exceptions.StreamLostError,
    pika.exceptions.ConnectionClosed,
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ChannelWrongStateError,
)
# A publisher connection unused for longer than this is checked before it is used.
_IDLE_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class OutboxMessage:
    """One message to publish: to ``exchange`` ("" is the default exchange) by key."""

    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, Any] | None = None
    mandatory: bool = True  # False: a broadcast that may reach no queue at all
    # A task message that needs the ratelimiter's admission first: it waits in
    # rate_limit_waiters instead of the outbox (see roost_core.admission).
    admission: Admission | None = None
    # Its AMQP priority on a task queue (a run's, 1-3; roost_core.engine.priority).
    priority: int | None = None


@dataclass(frozen=True)
class OutboxRow:
    id: int
    message: OutboxMessage


_INSERT = SQL.insert_outbox
_DELETE = SQL.delete_outbox
_CLAIM_STALE = SQL.claim_stale_outbox
_ANY_STALE = SQL.any_stale_outbox


def insert_params(messages: list[OutboxMessage]) -> dict[str, list[Any]]:
    """``messages`` as the named arrays every outbox insert takes."""
    return {
        "exchanges": [m.exchange for m in messages],
        "routing_keys": [m.routing_key for m in messages],
        "bodies": [m.body for m in messages],
        "headers": [fastjson.dumps(m.headers) if m.headers else None for m in messages],
        "mandatory": [m.mandatory for m in messages],
        "priorities": [m.priority for m in messages],
    }


def insert(messages: list[OutboxMessage]) -> Plan[list[OutboxRow]]:
    """Write ``messages`` to the outbox inside the caller's transaction."""
    if not messages:
        return []
    rows = yield Statement(_INSERT, insert_params(messages), deferrable=True)
    return [OutboxRow(row[0], m) for row, m in zip(rows, messages, strict=True)]


class Publisher:
    """Publishes persistent messages and waits until RabbitMQ has taken responsibility
    for them. Not thread-safe: one per thread.

    Three ways to publish, by cost:

    * :meth:`publish`: one message, publisher confirm (one round trip);
    * :meth:`publish_batch`: many messages in one AMQP transaction, so one round trip
      covers them all (``tx.commit-ok`` comes once every message is routed and, for
      persistent messages on durable queues, written);
    * :meth:`publish_unconfirmed`: fire and forget, for reports whose loss costs nothing.

    Messages to the default exchange go to a Dramatiq task queue; each such queue is
    declared (idempotently, with Dramatiq's arguments) the first time this publisher
    uses it, and all publishes are mandatory, so a queue deleted at run time is
    redeclared rather than the message silently dropped.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: pika.BlockingConnection | None = None
        self._confirm: BlockingChannel | None = None
        self._tx: BlockingChannel | None = None
        self._plain: BlockingChannel | None = None
        self._declared: set[str] = set()
        self._returned: list[OutboxMessage] = []
        self._used_at = 0.0

    def _conn(self) -> pika.BlockingConnection:
        conn = self._connection
        now = time.monotonic()
        if conn is not None and conn.is_open and now - self._used_at > _IDLE_CHECK_SECONDS:
            # A blocking pika connection answers the broker's heartbeats only while it is
            # used: after a pause, read what the broker sent meanwhile, so that a connection
            # it has closed is found here and replaced, not by a publish that fails.
            try:
                conn.process_data_events(0)
            except (pika.exceptions.AMQPError, OSError) as exc:
                logger.info(
                    "an idle broker connection was closed by the broker; reconnecting",
                    extra={"action": "publisher_reconnect", "error": repr(exc)},
                )
                self.close()
        if self._connection is None or not self._connection.is_open:
            self.close()
            self._connection = broker.connect(self._url)
        self._used_at = now
        return self._connection

    def _once_more(self, publish: Callable[[], None]) -> None:
        """Run ``publish``; if the connection turns out dead (closed by the broker, an
        idle-cutting load balancer, a broker restart), replace it and run it once more.
        If the first try did reach the broker, the message goes twice; consumers are
        idempotent."""
        try:
            publish()
        except _CONNECTION_LOST as exc:
            logger.info(
                "a broker connection was lost; publishing again on a new one",
                extra={"action": "publisher_reconnect", "error": repr(exc)},
            )
            self.close()
            publish()

    def _confirm_channel(self) -> BlockingChannel:
        conn = self._conn()
        if self._confirm is None or not self._confirm.is_open:
            self._confirm = conn.channel()
            self._confirm.confirm_delivery()
        return self._confirm

    def _tx_channel(self) -> BlockingChannel:
        conn = self._conn()
        if self._tx is None or not self._tx.is_open:
            self._tx = conn.channel()
            self._tx.tx_select()
            self._tx.add_on_return_callback(self._on_return)
        return self._tx

    def _on_return(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        self._returned.append(
            OutboxMessage(
                method.exchange, method.routing_key, body, props.headers, priority=props.priority
            )
        )

    def _ensure_queue(self, channel: BlockingChannel, message: OutboxMessage) -> None:
        if message.exchange == "" and message.routing_key not in self._declared:
            declare_task_queue(channel, message.routing_key)
            self._declared.add(message.routing_key)

    @staticmethod
    def _props(message: OutboxMessage) -> pika.BasicProperties:
        return pika.BasicProperties(
            delivery_mode=broker.PERSISTENT,
            content_type="application/json",
            headers=message.headers,
            priority=message.priority,
        )

    def publish(self, message: OutboxMessage) -> None:
        """Publish one message and wait for the broker's confirm."""
        self._once_more(lambda: self._publish_confirmed(message))

    def _publish_confirmed(self, message: OutboxMessage) -> None:
        channel = self._confirm_channel()
        self._ensure_queue(channel, message)
        props = self._props(message)
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

    def publish_batch(self, messages: list[OutboxMessage]) -> None:
        """Publish ``messages`` in one transaction; returns once RabbitMQ holds them all."""
        self._once_more(lambda: self._publish_batch(messages))

    def _publish_batch(self, messages: list[OutboxMessage]) -> None:
        pending = messages
        for _ in range(2):
            channel = self._tx_channel()
            for message in pending:
                self._ensure_queue(channel, message)
                channel.basic_publish(
                    message.exchange,
                    message.routing_key,
                    message.body,
                    self._props(message),
                    mandatory=message.mandatory,
                )
            channel.tx_commit()
            self._conn().process_data_events(0)  # dispatch any basic.return
            if not self._returned:
                return
            pending, self._returned = self._returned, []
            unroutable = [m for m in pending if m.exchange != ""]
            if unroutable:
                raise pika.exceptions.UnroutableError(unroutable)
            for m in pending:  # task queues deleted behind our back: declare again
                self._declared.discard(m.routing_key)
        raise pika.exceptions.UnroutableError(pending)

    def publish_unconfirmed(self, message: OutboxMessage) -> None:
        """Publish without waiting: for a report whose loss is harmless."""
        self._once_more(lambda: self._publish_unconfirmed(message))

    def _publish_unconfirmed(self, message: OutboxMessage) -> None:
        conn = self._conn()
        if self._plain is None or not self._plain.is_open:
            self._plain = conn.channel()
        self._plain.basic_publish(
            message.exchange, message.routing_key, message.body, self._props(message)
        )

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                self._connection.close()
        self._connection = None
        self._confirm = self._tx = self._plain = None
        self._declared.clear()
        self._returned.clear()


class OutboxRelay:
    """The fast path: a background thread that publishes freshly committed outbox rows
    and deletes them once confirmed. ``submit`` never blocks the caller.

    Publishing is at once; deleting waits up to ``DELETE_DELAY_SECONDS`` to gather the
    rows of many batches into one statement: under single triggers a DELETE of its own
    per trigger was a second PostgreSQL commit per run (issue #17). Rows waiting for
    their delete are long younger than the sweeper's grace period, so nothing sends
    them twice; a relay that dies meanwhile leaves them to the sweeper, which sends them
    again (consumers are idempotent)."""

    DELETE_DELAY_SECONDS = 0.1
    DELETE_BATCH = 2000

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
        sent: list[int] = []  # published, not yet deleted
        delete_at = 0.0
        stop = False
        while not stop:
            try:
                wait = max(0.0, delete_at - time.monotonic()) if sent else None
                first = self._queue.get(timeout=wait)
            except queue.Empty:
                first = []  # time to delete what was sent
            batch: list[OutboxRow] = []
            # Drain whatever else has arrived: one publish for all of it.
            while first is not None:
                batch.extend(first)
                try:
                    first = self._queue.get_nowait()
                except queue.Empty:
                    break
            stop = first is None
            if batch:
                if not sent:
                    delete_at = time.monotonic() + self.DELETE_DELAY_SECONDS
                sent += self._publish_batch(batch)
            if sent and (stop or len(sent) >= self.DELETE_BATCH or time.monotonic() >= delete_at):
                self._delete(sent)
                sent = []
        self._publisher.close()
        if self._conn is not None:
            self._conn.close()

    def _publish_batch(self, rows: list[OutboxRow]) -> list[int]:
        """Publish ``rows``; return the ids of those RabbitMQ took (all, or none)."""
        try:
            self._publisher.publish_batch([row.message for row in rows])
        except Exception:
            # Nothing of this batch counts as sent: the rows stay in the outbox and the
            # sweeper publishes them (a partial publish may mean duplicates, never loss).
            logger.warning(
                "outbox relay could not publish; the sweeper will retry",
                extra={"action": "outbox_publish_failed", "pending": len(rows)},
                exc_info=True,
            )
            self._publisher.close()
            return []
        self.published += len(rows)
        return [row.id for row in rows]

    def _delete(self, ids: list[int]) -> None:
        for attempt in range(2):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._conninfo, autocommit=True)
                self._conn.execute(_DELETE, {"ids": ids})
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


def stranded(conn: psycopg.Connection[Any], older_than_s: float) -> bool:
    """Whether any outbox row is older than ``older_than_s``: one read, so that an idle
    sweeper opens no transaction."""
    found = conn.execute(_ANY_STALE, {"older_than_s": older_than_s})
    return found.fetchone() is not None


def sweep(
    conn: psycopg.Connection[Any], publisher: Publisher, older_than_s: float, limit: int = 500
) -> int:
    """Publish outbox rows older than ``older_than_s`` (left by a crash or a failed fast
    path) and delete them. Safe with several sweepers: rows are claimed SKIP LOCKED."""
    with conn.transaction():
        rows = conn.execute(_CLAIM_STALE, {"older_than_s": older_than_s, "limit": limit}).fetchall()
        if not rows:
            return 0
        # Task messages whose attempt a worker has had already are not sent again.
        attempts = {r[0]: stale_messages.attempt_of(r[1], bytes(r[3])) for r in rows}
        served = stale_messages.stale(conn, [a for a in attempts.values() if a is not None])
        send = [r for r in rows if attempts[r[0]] is None or attempts[r[0]] not in served]
        if send:
            publisher.publish_batch(
                [OutboxMessage(r[1], r[2], bytes(r[3]), r[4], r[5], priority=r[6]) for r in send]
            )
        conn.execute(_DELETE, {"ids": [r[0] for r in rows]})
    logger.info(
        "outbox swept",
        extra={"action": "outbox_swept", "count": len(send), "dropped": len(rows) - len(send)},
    )
    return len(send)
