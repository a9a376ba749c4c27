"""An attempt's OpenTelemetry span, as an attempt middleware.

Each attempt gets a span, ``task <workflow>.<task>``, a child of its run's span (whose
carrier the task message brings), current in the task's thread while the task runs and
reports, so that spans the task starts nest under it (roost._attempt carries it over to
the event loop's thread for async tasks). A no-op when tracing is off.

When spans go only to the span store (no collector), the span is a
``roost_core.light_spans.LightSpan``, made and shipped as one record: the same span in
the store at a fraction of an SDK span's CPU, which was a sixth of a no-op task's
(issue #17). With a collector, or a parent that is not a sampled W3C context, it is an
SDK span.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from roost._middleware import Attempt, AttemptMiddleware, Failed, Waiting
from roost_core import tracing
from roost_core.light_spans import LightSpan, parse_traceparent

_tracer = tracing.tracer("roost.worker")


class Spans(AttemptMiddleware):
    """Opens the attempt's span before it runs and closes it after it reported; a
    failed attempt's span records the task's exception, with the status ERROR. A durable
    task's attempt that suspended ends OK, with a ``waiting`` event: it did what it
    should, and its next attempt gets a span of its own."""

    def __init__(self, tracer: trace.Tracer = _tracer) -> None:
        self._tracer = tracer

    def before_attempt(self, attempt: Attempt) -> None:
        message = attempt.message
        name = f"task {message.workflow}.{message.task}"
        attributes: dict[str, Any] = {  # few: each costs on every attempt
            "roost.run_id": message.run_id,
            "roost.task": message.task,
            "roost.attempt": message.attempt,
            "roost.worker_id": attempt.worker_id,
        }
        parent = parse_traceparent(message.trace) if tracing.store_only() else None
        if parent is not None:
            attempt.span_scope = _LightScope(LightSpan(parent, name, "consumer", attributes))
            return
        scope = ExitStack()
        scope.enter_context(
            self._tracer.start_as_current_span(
                name,
                context=tracing.extract(message.trace),
                kind=SpanKind.CONSUMER,
                attributes=attributes,
            )
        )
        attempt.span_scope = scope

    def after_attempt(self, attempt: Attempt, exception: BaseException | None) -> None:
        if attempt.span_scope is None:
            return
        if isinstance(attempt.outcome, Failed) and attempt.error is not None:
            _span_failed(attempt.error, "timed_out" if attempt.outcome.timed_out else "failed")
        elif isinstance(attempt.outcome, Waiting):
            _span_waiting(attempt.outcome)
        scope, attempt.span_scope = attempt.span_scope, None
        # As a `with` block would: an exception escaping to Dramatiq (a result that could
        # not be reported, say) is recorded on the span too.
        if exception is None:
            scope.__exit__(None, None, None)
        else:
            scope.__exit__(type(exception), exception, exception.__traceback__)

    def after_skip_attempt(self, attempt: Attempt) -> None:
        self.after_attempt(attempt, None)


class _LightScope(AbstractContextManager[bool | None]):
    """A light span, current from here until the scope exits; then shipped. An exception
    escaping is recorded on it, as the SDK's ``start_as_current_span`` would."""

    def __init__(self, span: LightSpan) -> None:
        self._span = span
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._span.record_exception(exc, escaped=True)
            self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        otel_context.detach(self._token)
        tracing.ship(self._span.record(""))


def _span_waiting(waiting: Waiting) -> None:
    """Record a suspended attempt on its span: what it waits for, and until when (an
    event wait with no timeout has no ``roost.until``)."""
    span = trace.get_current_span()
    attributes: dict[str, str | float] = {"roost.reason": waiting.reason}
    if waiting.until is not None:
        attributes["roost.until"] = waiting.until
    if waiting.event is not None:
        attributes["roost.event_key"] = waiting.event.key
    span.add_event("waiting", attributes)
    span.set_attribute("roost.outcome", "waiting")


def _span_failed(exc: BaseException, outcome: str) -> None:
    """Record a failed attempt on its span: the exception as an event, and the status."""
    span = trace.get_current_span()
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute("roost.outcome", outcome)
