"""The gateway's broker side: one transient queue per replica, bound to the broadcasts
of appended events, consumed on a thread and handed to the hub on the event loop.

The queue is exclusive and auto-deleted: each replica gets every event, and nothing
piles up for a replica that is gone. Messages are auto-acked: the event log in
PostgreSQL, not this queue, is what makes streams complete. After a reconnect the hub
tells every subscriber to re-read the log, which covers what was broadcast meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any

import pika.exceptions
from pydantic import ValidationError

from roost_core import broker
from roost_core.errors import BrokerUnavailableError
from roost_core.events import EventBatch
from roost_core.spans import decode
from roost_core.topology import EVENTS_APPENDED, SPANS_STORED, Topology
from roost_gateway.hub import Hub

logger = logging.getLogger(__name__)


class EventConsumer:
    def __init__(self, broker_url: str, topology: Topology, hub: Hub) -> None:
        self._url = broker_url
        self._topology = topology
        self._hub = hub
        self.replica = uuid.uuid4().hex[:12]
        self.connected = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="gateway-consumer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # the consuming loop checks it every second, then closes
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.5
        first = True
        while not self._stopping.is_set():
            try:
                self._consume(resync=not first)
                backoff = 0.5
            except (pika.exceptions.AMQPError, BrokerUnavailableError, OSError) as exc:
                if self._stopping.is_set():
                    break
                logger.warning(
                    "gateway lost RabbitMQ; reconnecting",
                    extra={"action": "gateway_reconnect", "error": repr(exc)},
                )
            self.connected.clear()
            first = False
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def _consume(self, resync: bool) -> None:
        connection = broker.connect(self._url)
        try:
            channel = connection.channel()
            topology = self._topology
            channel.exchange_declare(topology.events_exchange, exchange_type="topic", durable=True)
            queue = topology.gateway_queue(self.replica)
            channel.queue_declare(queue, exclusive=True, auto_delete=True)
            channel.queue_bind(queue, topology.events_exchange, routing_key=EVENTS_APPENDED)
            channel.queue_bind(queue, topology.events_exchange, routing_key=SPANS_STORED)
            channel.basic_consume(queue, self._on_message, auto_ack=True)
            self.connected.set()
            if resync:
                self._call(self._hub.resync)
            logger.info("gateway consuming", extra={"action": "gateway_consuming", "queue": queue})
            while not self._stopping.is_set():
                connection.process_data_events(time_limit=1.0)
        finally:
            if connection.is_open:
                connection.close()

    def _on_message(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        if method.routing_key == SPANS_STORED:
            if not self._hub.span_subscribers:
                return  # nobody here asked for spans: do not even parse them
            try:
                spans = decode(body)
            except ValueError as exc:
                logger.error(
                    "malformed span broadcast dropped",
                    extra={"action": "broadcast_malformed", "error": str(exc)},
                )
                return
            self._call(self._hub.dispatch_spans, spans)
            return
        if not self._hub.listening:
            return  # nobody is subscribed here: the log has these events for whoever comes
        try:
            batch = EventBatch.model_validate_json(body)
        except ValidationError as exc:
            logger.error(
                "malformed event broadcast dropped",
                extra={"action": "broadcast_malformed", "error": str(exc)},
            )
            return
        self._call(self._hub.dispatch, batch)

    def _call(self, fn: Any, *args: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)
