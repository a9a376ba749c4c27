"""Roost's own span store: a run's trace, visible with no collector at all.

Every process that makes spans of runs (api, scheduler, ratelimiter, workers) ships
the finished ones to a RabbitMQ queue (``<namespace>.spans``) in batches, from a
thread of its own, so the hot path never waits for it. Each gateway replica's span
writer stores them in PostgreSQL (``roost_core.span_store``: ``spans``, bounded per run,
deleted with the run) and broadcasts what it stored, so each gateway streams ``span``
events to the run's subscribers as spans end.

Spans are telemetry, not state: a span lost to a full queue or a broker outage costs a
line in a waterfall, never a run. Messages are transient and the queue is bounded.

A span belongs to a run through its ``roost.run_id`` attribute. Roost sets it on every
span it makes; a span started inside one (a user's span in a task) inherits it from its
parent (see :class:`roost_core.tracing.RunScope`). Spans of no run are not stored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from typing import Any, Literal

import pika
import pika.exceptions
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode
from pydantic import BaseModel, ConfigDict, Field

from roost_core import broker, fastjson
from roost_core.topology import Topology

logger = logging.getLogger(__name__)

RUN_ID = "roost.run_id"

JSON = Any


class SpanEventRecord(BaseModel):
    """Something that happened during a span (an exception, with its type, message and
    stack trace as ``exception.*`` attributes)."""

    model_config = ConfigDict(frozen=True)

    name: str
    at: float  # unix seconds
    attributes: dict[str, JSON] = Field(default_factory=dict)


class SpanRecord(BaseModel):
    """One finished span, as shipped, stored, served and streamed."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None = None
    name: str
    service: str
    kind: str  # internal, server, client, producer, consumer
    start: float  # unix seconds
    end: float
    status: Literal["unset", "ok", "error"] = "unset"
    status_message: str | None = None
    attributes: dict[str, JSON] = Field(default_factory=dict)
    events: list[SpanEventRecord] = Field(default_factory=list)

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


def _json_value(value: Any) -> JSON:
    return list(value) if isinstance(value, tuple) else value


_STATUS = {StatusCode.ERROR: "error", StatusCode.OK: "ok", StatusCode.UNSET: "unset"}

# The wire form of a span is SpanRecord's JSON, built and read as plain dicts on the way
# (export, store, broadcast): a pydantic model per span cost more than the span itself.
WireSpan = dict[str, Any]


def wire(span: ReadableSpan, service: str) -> WireSpan | None:
    """A finished SDK span in SpanRecord's shape, or None if it belongs to no run."""
    attributes = span.attributes or {}
    run_id = attributes.get(RUN_ID)
    ctx = span.context
    if not isinstance(run_id, str) or ctx is None or span.start_time is None:
        return None
    parent = span.parent
    return {
        "run_id": run_id,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
        "name": span.name,
        "service": service,
        "kind": span.kind.name.lower(),
        "start": span.start_time / 1e9,
        "end": (span.end_time or span.start_time) / 1e9,
        "status": _STATUS.get(span.status.status_code, "unset"),
        "status_message": span.status.description,
        "attributes": {k: _json_value(v) for k, v in attributes.items()},
        "events": [
            {
                "name": e.name,
                "at": e.timestamp / 1e9,
                "attributes": {k: _json_value(v) for k, v in (e.attributes or {}).items()},
            }
            for e in span.events
        ],
    }


def record(span: ReadableSpan, service: str) -> SpanRecord | None:
    """A finished SDK span as a record, or None if it belongs to no run."""
    found = wire(span, service)
    return None if found is None else SpanRecord.model_validate(found)


def encode(spans: list[WireSpan]) -> bytes:
    """A batch of spans as shipped and broadcast: ``{"spans": [...]}``."""
    return fastjson.dumpb({"spans": spans})


def decode(body: bytes) -> list[WireSpan]:
    """The well-formed spans of a shipped batch (malformed ones are left out); raises
    ValueError if the body is not a batch at all."""
    try:
        batch = fastjson.loads(body)
        items = batch["spans"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a span batch: {exc}") from None
    if not isinstance(items, list):
        raise ValueError("not a span batch: 'spans' is not a list")
    return [s for s in items if _well_formed(s)]


def _well_formed(span: Any) -> bool:
    if not isinstance(span, dict):
        return False
    try:
        return (
            all(isinstance(span[k], str) for k in _TEXT_FIELDS)
            and all(isinstance(span[k], int | float) for k in ("start", "end"))
            and isinstance(span.get("attributes", {}), dict)
            and isinstance(span.get("events", []), list)
            and span.get("status", "unset") in ("unset", "ok", "error")
            and isinstance(span.get("parent_span_id"), str | None)
        )
    except KeyError:
        return False


_TEXT_FIELDS = ("run_id", "trace_id", "span_id", "name", "service", "kind")


class SpanShipper(SpanProcessor):
    """Ships finished spans of runs to the span queue: a span processor for SDK spans,
    and :meth:`ship` for spans recorded without one (see ``tracing.record_span``).

    The hot path only appends to a bounded deque (a span that finds it full is dropped
    and counted). A thread of its own sleeps while nothing waits; once spans come it
    wakes every ``delay`` seconds (at once when ``batch`` spans wait), turns them into
    their wire form and publishes them as one message on its own connection. A publish
    that fails (broker gone, or a connection the broker closed while it sat idle) is
    tried once more on a fresh connection, then the batch is dropped and logged: spans
    never hold anything up.
    """

    def __init__(
        self,
        broker_url: str,
        topology: Topology,
        service: str,
        *,
        delay: float = 0.2,
        batch: int = 512,
        limit: int = 8192,
    ) -> None:
        self._url = broker_url
        self._queue_name = topology.spans_queue
        self._service = service
        self._delay = delay
        self._batch = batch
        self._limit = limit
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._dropped_warned = False
        self.dropped = 0
        self._start()
        # A forked child (a worker process) starts with an empty queue and a thread of
        # its own; the parent's connection is not used there.
        os.register_at_fork(after_in_child=self._start)

    def _start(self) -> None:
        self._pending: deque[ReadableSpan | WireSpan] = deque()
        self._wake = threading.Event()
        # Set by the first span after the queue ran empty: an idle process's shipper
        # sleeps on it instead of waking every ``delay`` to find nothing (issue #17's
        # idle budget: seven processes ship spans).
        self._arrived = threading.Event()
        self._stopping = False
        self._connection = self._channel = None
        self._thread = threading.Thread(target=self._run, name="span-shipper", daemon=True)
        self._thread.start()

    # -- the hot path ----------------------------------------------------------------

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes
        if attributes is not None and RUN_ID in attributes:
            self._put(span)

    def ship(self, span: WireSpan) -> None:
        """A span already in its wire form (its service is filled in here)."""
        span["service"] = self._service
        self._put(span)

    def _put(self, item: ReadableSpan | WireSpan) -> None:
        if len(self._pending) >= self._limit:
            self.dropped += 1
            return
        self._pending.append(item)
        if not self._arrived.is_set():
            self._arrived.set()
        if len(self._pending) >= self._batch:
            self._wake.set()

    # -- the shipping thread -----------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            # Cleared before the queue is looked at, set by a put after its append: a
            # span that arrives in between is either seen here or wakes the wait.
            self._arrived.clear()
            if not self._pending:
                self._arrived.wait()
            self._wake.wait(self._delay)  # let a batch gather
            self._wake.clear()
            self._flush()

    def _flush(self) -> None:
        while self._pending:
            items: list[ReadableSpan | WireSpan] = []
            while self._pending and len(items) < self._batch:
                items.append(self._pending.popleft())
            records = [
                item if isinstance(item, dict) else wire(item, self._service) for item in items
            ]
            self._publish([r for r in records if r is not None])

    def _publish(self, records: list[WireSpan]) -> None:
        if not records:
            return
        try:
            body = encode(records)
        except (TypeError, ValueError) as exc:  # a value JSON cannot hold: drop the batch
            logger.warning(
                "spans dropped: not JSON",
                extra={"action": "spans_dropped", "count": len(records), "error": repr(exc)},
            )
            return
        for attempt in range(2):
            try:
                if self._connection is None or not self._connection.is_open:
                    self._connection = broker.connect(self._url)
                    self._channel = self._connection.channel()
                self._channel.basic_publish(
                    "",
                    self._queue_name,
                    body,
                    pika.BasicProperties(content_type="application/json", delivery_mode=1),
                )
                self._dropped_warned = False
                return
            except Exception as exc:  # the shipping thread must go on, whatever happened
                self._close()
                if attempt == 1 and not self._dropped_warned:
                    logger.warning(
                        "spans dropped: RabbitMQ unavailable",
                        extra={
                            "action": "spans_dropped",
                            "count": len(records),
                            "error": repr(exc),
                        },
                    )
                    self._dropped_warned = True

    def _close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                self._connection.close()
        self._connection = self._channel = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._wake.set()
        return True

    def shutdown(self) -> None:
        self._stopping = True
        self._arrived.set()
        self._wake.set()
        self._thread.join(timeout=2)
        self._flush()
        self._close()
