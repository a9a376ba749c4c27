"""The span store's writer: a thread of each gateway replica that drains the span
queue (shared by the replicas) in natural batches, stores each batch in one transaction
(bounded per run), then broadcasts what it stored to every gateway replica (itself
included) and acknowledges.

It lives in the gateway, not the scheduler: storing a few thousand spans a second costs
CPU, and in the scheduler's process it competed with the hot path for the interpreter.
It has its own broker and database connections. Spans are telemetry: a batch that
cannot be stored (its runs are gone) is acknowledged and dropped; a malformed one is
logged and dropped.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pika
import psycopg
from prometheus_client import Counter

from roost_core import span_store, spans
from roost_core.service import consuming, keep_running, pump
from roost_core.topology import SPANS_STORED, Topology

logger = logging.getLogger(__name__)

SPANS_STORED_TOTAL = Counter("roost_spans_stored", "Spans of runs stored in the span store.")
SPANS_DROPPED = Counter(
    "roost_spans_dropped",
    "Spans not stored: their run has its maximum of spans, or no longer exists.",
)

PREFETCH = 50  # span batches (up to 512 spans each) held unacknowledged at once


class SpanWriter:
    def __init__(
        self, broker_url: str, database_url: str, topology: Topology, max_spans_per_run: int
    ) -> None:
        self._broker_url = broker_url
        self._database_url = database_url
        self._topology = topology
        self._cap = max_spans_per_run
        self._known = span_store.StoredCounts()
        self._stopping = threading.Event()
        self._buffer: list[tuple[int, bytes]] = []
        self._thread = threading.Thread(target=self._run, name="span-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        keep_running(self._consume, self._stopping, name="span_writer", on_lost=self._forget)

    def _consume(self) -> None:
        with consuming(
            self._database_url,
            self._broker_url,
            self._topology,
            queue=self._topology.spans_queue,
            prefetch=PREFETCH,
            on_message=self._on_message,
            autocommit=True,
        ) as (conn, connection, channel):
            while not self._stopping.is_set():
                pump(connection, channel, 0.5)
                if self._buffer:
                    pump(connection, channel, 0)
                    batch, self._buffer = self._buffer, []
                    self._store(conn, channel, batch)

    def _forget(self) -> None:
        """Drop what a lost connection delivered (redelivered; its tags are void). The
        buffer is replaced whenever a batch is taken: forget whichever is current."""
        self._buffer = []

    def _on_message(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        self._buffer.append((method.delivery_tag, body))

    def _store(
        self, conn: psycopg.Connection[Any], channel: Any, batch: list[tuple[int, bytes]]
    ) -> None:
        records: list[spans.WireSpan] = []
        for _, body in batch:
            try:
                records += spans.decode(body)
            except ValueError as exc:
                logger.error(
                    "malformed span batch dropped",
                    extra={"action": "spans_malformed", "error": str(exc)[:500]},
                )
        stored: list[spans.WireSpan] = []
        if records:
            with conn.transaction():
                stored = span_store.store(conn, records, self._cap, self._known)
            SPANS_STORED_TOTAL.inc(len(stored))
            SPANS_DROPPED.inc(len(records) - len(stored))
        if stored:
            # After the commit: a gateway that hears of a span can also read it back.
            channel.basic_publish(
                self._topology.events_exchange,
                SPANS_STORED,
                spans.encode(stored),
                pika.BasicProperties(content_type="application/json", delivery_mode=1),
            )
        channel.basic_ack(batch[-1][0], multiple=True)
