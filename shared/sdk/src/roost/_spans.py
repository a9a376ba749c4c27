"""An attempt's OpenTelemetry span, as an attempt middleware.

Each attempt gets a span, ``task <workflow>.<task>``, a child of its run's span (whose
carrier the task message brings), current in the task's thread while the task runs and
reports, so that spans the task starts nest under it (roost._attempt carries it over to
the event loop's thread for async tasks). A no-op when tracing is off.
"""

from __future__ import annotations

from contextlib import ExitStack

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from roost._middleware import Attempt, AttemptMiddleware, Failed
from roost_core import tracing

_tracer = tracing.tracer("roost.worker")


class Spans(AttemptMiddleware):
    """Opens the attempt's span before it runs and closes it after it reported; a
    failed attempt's span records the task's exception, with the status ERROR."""

    def __init__(self, tracer: trace.Tracer = _tracer) -> None:
        self._tracer = tracer

    def before_attempt(self, attempt: Attempt) -> None:
        message = attempt.message
        scope = ExitStack()
        scope.enter_context(
            self._tracer.start_as_current_span(
                f"task {message.workflow}.{message.task}",
                context=tracing.extract(message.trace),
                kind=SpanKind.CONSUMER,
                attributes={  # few: each costs on every attempt
                    "roost.run_id": message.run_id,
                    "roost.task": message.task,
                    "roost.attempt": message.attempt,
                    "roost.worker_id": attempt.worker_id,
                },
            )
        )
        attempt.span_scope = scope

    def after_attempt(self, attempt: Attempt, exception: BaseException | None) -> None:
        if attempt.span_scope is None:
            return
        if isinstance(attempt.outcome, Failed) and attempt.error is not None:
            _span_failed(attempt.error, "timed_out" if attempt.outcome.timed_out else "failed")
        scope, attempt.span_scope = attempt.span_scope, None
        # As a `with` block would: an exception escaping to Dramatiq (a result that could
        # not be reported, say) is recorded on the span too.
        if exception is None:
            scope.__exit__(None, None, None)
        else:
            scope.__exit__(type(exception), exception, exception.__traceback__)

    def after_skip_attempt(self, attempt: Attempt) -> None:
        self.after_attempt(attempt, None)


def _span_failed(exc: BaseException, outcome: str) -> None:
    """Record a failed attempt on its span: the exception as an event, and the status."""
    span = trace.get_current_span()
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute("roost.outcome", outcome)
