"""The two kinds of event stream, as async generators of SSE events.

Both subscribe to the hub *before* reading the log, so nothing can fall between the
backlog and the live events; duplicates between the two are dropped.

* A run's stream is exact: events carry the run's gapless ``seq``, so the stream skips
  what it has sent and, seeing seq 9 after 7, reads 8 from the log (it committed before
  9 did: both were written under the run's row lock). It ends after the run's final
  event.
* A workflow's or tenant's stream follows event ids. Resuming from the log is exact up
  to events of different runs that committed out of id order within the same instant.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent

from roost_core.events import ALL_TYPES, Event
from roost_gateway.hub import Encoded, EncodedSpan, Hub, Scope, Subscriber
from roost_gateway.log import EventLog

PAGE = 500
RECENT_IDS = 10_000  # live ids remembered per workflow/tenant stream, against duplicates


SPAN = "span"  # not an event type: asks a run's stream for its spans as they end


class TypeFilter:
    """Event types a client asked for: exact types, or a prefix such as ``task.*``;
    and ``span`` for a run's spans (never sent unless asked for: they are not events,
    and clients that parse events should not meet them)."""

    def __init__(self, spec: str | None) -> None:
        self.exact: set[str] = set()
        self.prefixes: list[str] = []
        self.spans = False
        for part in (p.strip() for p in (spec or "").split(",")):
            if not part:
                continue
            if part == SPAN:
                self.spans = True
            elif part.endswith(".*") and any(t.startswith(part[:-1]) for t in ALL_TYPES):
                self.prefixes.append(part[:-1])
            elif part in ALL_TYPES:
                self.exact.add(part)
            else:
                raise ValueError(
                    f"unknown event type {part!r}: expected one of {', '.join(sorted(ALL_TYPES))},"
                    " a prefix such as 'task.*', or 'span'"
                )
        self.everything = not self.exact and not self.prefixes and not self.spans

    def __call__(self, event_type: str) -> bool:
        return (
            self.everything
            or event_type in self.exact
            or any(event_type.startswith(p) for p in self.prefixes)
        )


def _sse(item: Encoded) -> ServerSentEvent:
    return ServerSentEvent(data=item.data, event=item.event.type, id=str(item.event.id))


async def run_stream(
    hub: Hub,
    log: EventLog,
    sub: Subscriber,
    run_id: str,
    after_id: int | None,
    wanted: TypeFilter,
) -> AsyncIterator[ServerSentEvent]:
    """Every event of one run after ``after_id`` (all, if None), then live until the run
    ends. ``sub`` is already subscribed; it is unsubscribed when the stream ends."""
    try:
        last = await log.seq_at(run_id, after_id) if after_id else 0
        ended = False
        sent_spans: set[str] = set()

        async def stored_spans() -> AsyncIterator[ServerSentEvent]:
            # Asked for spans: those stored so far (subscribed first, so none falls
            # between these and the live ones; a span is sent once, by its id).
            if not wanted.spans:
                return
            for span in await log.run_spans(run_id):
                if span.span_id not in sent_spans:
                    sent_spans.add(span.span_id)
                    yield ServerSentEvent(data=span.model_dump_json(), event=SPAN)

        async def from_log(before: int | None = None) -> AsyncIterator[ServerSentEvent]:
            nonlocal last, ended
            while True:
                page = await log.run_page(run_id, last, PAGE, before)
                for event in page:
                    last, ended = event.seq, event.ends_run
                    if wanted(event.type):
                        yield _sse(Encoded.of(event))
                if len(page) < PAGE:
                    return

        async for sse in from_log():
            yield sse
        async for sse in stored_spans():
            yield sse
        while not ended:
            if sub.overflowed:
                return  # the client resumes with its last id
            if sub.stale:
                sub.stale = False
                async for sse in from_log():
                    yield sse
                async for sse in stored_spans():
                    yield sse
                continue
            for item in await sub.next_batch():
                if isinstance(item, EncodedSpan):
                    if item.span_id not in sent_spans:
                        sent_spans.add(item.span_id)
                        yield ServerSentEvent(data=item.data, event=SPAN)
                    continue
                event = item.event
                if event.seq <= last:
                    continue  # already sent (from the log, or a duplicate broadcast)
                if event.seq > last + 1:
                    async for sse in from_log(before=event.seq):
                        yield sse
                    if event.seq <= last:
                        continue
                last, ended = event.seq, event.ends_run
                if wanted(event.type):
                    yield _sse(item)
    finally:
        hub.unsubscribe(sub)


async def scope_stream(
    hub: Hub,
    log: EventLog,
    sub: Subscriber,
    scope: Scope,
    after_id: int | None,
    wanted: TypeFilter,
) -> AsyncIterator[ServerSentEvent]:
    """A workflow's or tenant's events: those after ``after_id`` from the log (none, if
    None: live only), then live, until the client leaves."""
    recent: deque[int] = deque(maxlen=RECENT_IDS)
    seen: set[int] = set()

    def fresh(event: Event) -> bool:
        if event.id in seen:
            return False
        if len(recent) == recent.maxlen:
            seen.discard(recent[0])
        recent.append(event.id)
        seen.add(event.id)
        return True

    try:
        cursor = after_id if after_id is not None else await log.last_id()

        async def from_log() -> AsyncIterator[ServerSentEvent]:
            nonlocal cursor
            while True:
                page = await log.scope_page(scope.tenant_id, scope.workflow, cursor, PAGE)
                for event in page:
                    cursor = max(cursor, event.id)
                    if fresh(event) and wanted(event.type):
                        yield _sse(Encoded.of(event))
                if len(page) < PAGE:
                    return

        if after_id is not None:
            async for sse in from_log():
                yield sse
        while True:
            if sub.overflowed:
                return
            if sub.stale:
                sub.stale = False
                async for sse in from_log():
                    yield sse
                continue
            for item in await sub.next_batch():
                if isinstance(item, EncodedSpan):
                    continue  # only a run's stream takes spans
                cursor = max(cursor, item.event.id)
                if fresh(item.event) and wanted(item.event.type):
                    yield _sse(item)
    finally:
        hub.unsubscribe(sub)
