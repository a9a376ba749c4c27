"""Fan-out of live events to subscribers, on the gateway's event loop.

The broker consumer hands each appended batch to :meth:`Hub.dispatch`, which never
blocks and never awaits: it appends the event to the buffer of every matching
subscriber and wakes it. A subscriber whose buffer is full (a client that reads slower
than events arrive) is cut off instead of slowing anyone else or growing memory without
bound; it reconnects with its last event id and the event log fills the gap.

Each event is encoded to JSON once, however many subscribers receive it.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import Counter

from roost_core.events import Event, EventBatch, public
from roost_core.spans import WireSpan

EVENTS_OFFERED = Counter(
    "roost_gateway_events_offered", "Events handed to subscribers (one per subscriber)."
)
SUBSCRIBERS_CUT = Counter(
    "roost_gateway_subscribers_cut", "Subscribers cut off for reading slower than events came."
)


@dataclass(frozen=True)
class Encoded:
    """An event and its SSE data, encoded once for every subscriber."""

    event: Event
    data: str

    @staticmethod
    def of(event: Event) -> Encoded:
        return Encoded(event, json.dumps(public(event), separators=(",", ":")))


@dataclass(frozen=True)
class EncodedSpan:
    """A finished span of a run, encoded once: streamed as an SSE ``span`` event with
    no id (spans are not in the event log; ``GET /api/v1/runs/{id}/trace`` has them
    all), so it never moves a client's Last-Event-ID."""

    run_id: str
    span_id: str
    data: str


@dataclass(frozen=True)
class Scope:
    """What a subscriber listens to: one run, one workflow, or the whole tenant."""

    tenant_id: str
    run_id: str | None = None
    workflow: str | None = None


@dataclass(eq=False)
class Subscriber:
    scope: Scope
    limit: int
    spans: bool = False  # also wants the run's spans as they are stored
    buffer: deque[Encoded | EncodedSpan] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    stale: bool = False  # events may have been missed (broker reconnect): re-read the log

    def offer(self, item: Encoded | EncodedSpan) -> None:
        if self.overflowed:
            return
        if len(self.buffer) >= self.limit:
            # Too slow: stop buffering; the stream ends and the client resumes from the log.
            self.overflowed = True
            self.buffer.clear()
            SUBSCRIBERS_CUT.inc()
        else:
            self.buffer.append(item)
        self.wakeup.set()

    async def next_batch(self, timeout: float | None = None) -> list[Encoded | EncodedSpan]:
        """Everything buffered, waiting up to ``timeout`` seconds for something."""
        if not self.buffer and not self.overflowed and not self.stale:
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout)
            except TimeoutError:
                return []
        items = list(self.buffer)
        self.buffer.clear()
        return items


class Hub:
    """Subscribers by what they listen to: a run, a (tenant, workflow), a tenant."""

    def __init__(self, buffer_limit: int) -> None:
        self.buffer_limit = buffer_limit
        self._subs: dict[tuple[str, ...], set[Subscriber]] = {}
        self.dispatched = 0
        # Read by the consumer thread: with nobody listening, broadcasts are dropped
        # unread (with nobody asking for spans, those of spans). Safe: a subscriber is
        # counted before it reads the log, and a broadcast is sent after its events
        # committed, so what one dropped the log still gives it.
        self.listening = 0
        self.span_subscribers = 0

    def subscribe(self, scope: Scope, *, spans: bool = False) -> Subscriber:
        sub = Subscriber(scope, self.buffer_limit, spans=spans)
        self.listening += 1
        self.span_subscribers += spans
        self._subs.setdefault(_key(scope), set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        key = _key(sub.scope)
        subs = self._subs.get(key)
        if subs is not None and sub in subs:
            subs.discard(sub)
            self.listening -= 1
            self.span_subscribers -= sub.spans
            if not subs:
                del self._subs[key]

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def resync(self) -> None:
        """After the broker connection was lost, whatever was broadcast meanwhile never
        arrived: every subscriber re-reads the log from where it is."""
        for subs in self._subs.values():
            for sub in subs:
                sub.stale = True
                sub.wakeup.set()

    def dispatch(self, batch: EventBatch) -> None:
        """Offer every event of ``batch`` to its subscribers; never blocks."""
        tenant_subs = self._subs.get(("tenant", batch.tenant_id), set())
        for event in batch.events:
            targets = [
                *self._subs.get(("run", event.run_id), ()),
                *self._subs.get(("workflow", batch.tenant_id, event.workflow), ()),
                *tenant_subs,
            ]
            if not targets:
                continue
            item = Encoded.of(event)
            for sub in targets:
                sub.offer(item)
            self.dispatched += 1
            EVENTS_OFFERED.inc(len(targets))

    def dispatch_spans(self, spans: list[WireSpan]) -> None:
        """Offer every span to its run's subscribers that asked for spans; never
        blocks. Each span is encoded once, and only if someone wants it."""
        for span in spans:
            targets = [s for s in self._subs.get(("run", span["run_id"]), ()) if s.spans]
            if not targets:
                continue
            item = EncodedSpan(span["run_id"], span["span_id"], json.dumps(span))
            for sub in targets:
                sub.offer(item)
            EVENTS_OFFERED.inc(len(targets))


def _key(scope: Scope) -> tuple[str, ...]:
    if scope.run_id is not None:
        return ("run", scope.run_id)
    if scope.workflow is not None:
        return ("workflow", scope.tenant_id, scope.workflow)
    return ("tenant", scope.tenant_id)
