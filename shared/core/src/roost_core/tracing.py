"""OpenTelemetry tracing, configured by the standard ``OTEL_*`` variables.

Two destinations, each fed by its own batch processor (a background thread: the hot
path only appends a finished span to a bounded queue):

* Roost's own span store (on unless ``ROOST_TRACE_STORE=false``): spans of runs go to
  RabbitMQ and on to PostgreSQL, so ``GET /api/v1/runs/{id}/trace`` and ``roost runs
  trace`` show a run's trace with no collector (see :mod:`roost_core.spans`).
* An OTLP (HTTP or gRPC) or console exporter, when ``OTEL_EXPORTER_OTLP_ENDPOINT``,
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER=otlp|console`` says so.

``OTEL_SDK_DISABLED=true`` turns both off: the global tracer provider stays
OpenTelemetry's no-op one, spans cost next to nothing, carriers are empty. The sampler
comes from ``OTEL_TRACES_SAMPLER`` as the SDK reads it.

A run's trace crosses processes as a W3C trace-context carrier (``traceparent``): the api
stores the run's on the run and puts it in every task message (``TaskMessage.trace``), so
each attempt's span on a worker is a child of its run's span.
"""

from __future__ import annotations

import atexit
import os
import random
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from roost_core.spans import RUN_ID, SpanShipper, WireSpan
from roost_core.topology import Topology

_configured = False
_exporting = False
_shipper: SpanShipper | None = None

# The span store's batch processor: ship often (the live view wants spans within a
# fraction of a second), in batches big enough to keep one message per many spans.
STORE_DELAY_MS = 200
STORE_BATCH = 512
STORE_QUEUE = 8192
SHUTDOWN_SECONDS = 2.0


def _truthy(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value in ("1", "true", "yes", "on")


class RunScope(SpanProcessor):
    """Gives a span started inside a run's span (a user's span in a task, a client
    call made while deciding) that run's ``roost.run_id``, so the span store keeps it
    with the run. Only the attribute is copied; it costs one dict lookup per span."""

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        if span.attributes is not None and RUN_ID in span.attributes:
            return
        parent = trace.get_current_span(parent_context)
        attributes = getattr(parent, "attributes", None)
        if attributes:
            run_id = attributes.get(RUN_ID)
            if run_id is not None:
                span.set_attribute(RUN_ID, run_id)

    def on_end(self, span: ReadableSpan) -> None:
        pass


def _exporter() -> SpanExporter | None:
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if choice != "otlp" and not endpoint:
        return None
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        exporter: SpanExporter = GrpcExporter()
        return exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def setup(service: str, *, broker_url: str | None = None, namespace: str | None = None) -> bool:
    """Install this process's tracer provider; return whether tracing is on.

    ``broker_url`` and ``namespace`` say where the span store's queue is (a process
    that makes no spans of runs, such as the gateway, passes neither). The service name
    is ``OTEL_SERVICE_NAME`` or ``roost-<service>``."""
    global _configured, _exporting, _shipper
    if _configured:
        return True
    if _truthy("OTEL_SDK_DISABLED", False):
        return False
    exporter = _exporter()
    store = broker_url is not None and namespace is not None and _truthy("ROOST_TRACE_STORE", True)
    if exporter is None and not store:
        return False
    name = os.environ.get("OTEL_SERVICE_NAME") or f"roost-{service}"
    # Our own exit hook, not the SDK's: its flush at exit waits as long as an export
    # can take (10 s and more with a collector that does not answer).
    provider = TracerProvider(
        resource=Resource.create({"service.name": name}), shutdown_on_exit=False
    )
    atexit.register(shutdown)
    provider.add_span_processor(RunScope())
    if store:
        assert broker_url is not None and namespace is not None
        _shipper = SpanShipper(
            broker_url,
            Topology(namespace),
            name,
            delay=STORE_DELAY_MS / 1000,
            batch=STORE_BATCH,
            limit=STORE_QUEUE,
        )
        provider.add_span_processor(_shipper)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
        _exporting = True
    trace.set_tracer_provider(provider)
    _configured = True
    return True


def enabled() -> bool:
    """Whether this process records spans (else skip building spans nobody records)."""
    return _configured


def store_only() -> bool:
    """Whether spans go to the span store and nowhere else: then a hot path may make its
    spans as records (``roost_core.light_spans``), at a fraction of an SDK span's cost."""
    return _configured and not _exporting and _shipper is not None


def ship(record: WireSpan) -> None:
    """Send a span already in the span store's record form (its service filled in)."""
    if _shipper is not None:
        _shipper.ship(record)


def record_span(
    tracer: trace.Tracer,
    name: str,
    parent: Mapping[str, str] | None,
    start: float,
    end: float,
    attributes: dict[str, Any],
    error: str | None = None,
) -> None:
    """Record a span whose times are already known (unix seconds), as a child of the
    carrier ``parent``: the scheduler's decisions and queue waits. With only the span
    store on, it goes straight to the store's shipper as a record, at a fraction of an
    SDK span's cost (these are made on the scheduler's hot path, several per run); with
    a collector too, it is an SDK span, so that every destination gets it."""
    if not _configured:
        return
    if _exporting or _shipper is None:
        span = tracer.start_span(
            name, context=extract(parent), start_time=int(start * 1e9), attributes=attributes
        )
        if error is not None:
            span.set_status(trace.StatusCode.ERROR, error)
        span.end(end_time=int(end * 1e9))
        return
    traceparent = (parent or {}).get("traceparent", "")
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return  # no valid parent: not part of a run's trace
    if not int(parts[3], 16) & 1:
        return  # the run's trace was not sampled
    _shipper.ship(
        {
            "run_id": attributes.get(RUN_ID),
            "trace_id": parts[1],
            "span_id": format(random.getrandbits(64) or 1, "016x"),
            "parent_span_id": parts[2],
            "name": name,
            "kind": "internal",
            "start": start,
            "end": end,
            "status": "error" if error is not None else "unset",
            "status_message": error,
            "attributes": attributes,
            "events": [],
        }
    )


def exporting() -> bool:
    """Whether spans also leave for an external collector (OTLP or console): then the
    OpenTelemetry instrumentations of Starlette and psycopg are worth their cost."""
    return _exporting


def _instrumentation_wanted(name: str) -> bool:
    """An instrumentation runs only when spans leave for a collector, and not if
    ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (the standard list) names it."""
    disabled = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return _exporting and name not in {d.strip() for d in disabled.split(",")}


def instrument_starlette(app: Any) -> None:
    """A server span per HTTP request, named by its route template (``POST
    /api/v1/workflows/{name}/runs``), from OpenTelemetry's ASGI middleware, which also
    takes the caller's ``traceparent``. Requests to ``/health``, ``/ready`` and
    ``/metrics`` are left out (``OTEL_PYTHON_STARLETTE_EXCLUDED_URLS`` overrides), and
    so are the per-message ``send``/``receive`` spans, which would cost a span per SSE
    event. (The Starlette instrumentor wraps the same middleware but cannot drop those.)"""
    if not _instrumentation_wanted("starlette"):
        return
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from starlette.routing import Match

    def span_details(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        method = scope.get("method", "HTTP")
        for route in app.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                template = getattr(route, "path", scope.get("path", ""))
                return f"{method} {template}", {"http.route": template}
        return method, {}

    app.add_middleware(
        OpenTelemetryMiddleware,
        excluded_urls=os.environ.get("OTEL_PYTHON_STARLETTE_EXCLUDED_URLS")
        or "/health,/ready,/metrics",
        default_span_details=span_details,
        exclude_spans=["receive", "send"],
    )


def instrument_psycopg() -> None:
    """A client span per SQL statement (OpenTelemetry's psycopg instrumentation). Used
    by the api, where statements run inside a request's span. The scheduler and the
    ratelimiter do not use it: each of their statements serves a batch of many runs, so
    its span would belong to no run's trace; their per-run decision spans say more."""
    if not _instrumentation_wanted("psycopg"):
        return
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    PsycopgInstrumentor().instrument(enable_commenter=False)


def shutdown(timeout: float = SHUTDOWN_SECONDS) -> None:
    """Flush what the batch processors still hold, giving up after ``timeout`` seconds
    (spans are not worth holding up a process that is asked to stop)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        return
    flusher = threading.Thread(target=provider.shutdown, name="tracing-shutdown", daemon=True)
    flusher.start()
    flusher.join(timeout)


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def carrier(ctx: context.Context | None = None) -> dict[str, str]:
    """``ctx`` (by default the current context) as a W3C trace-context carrier (empty
    when not tracing)."""
    out: dict[str, str] = {}
    propagate.inject(out, context=ctx)
    return out


def extract(headers: Mapping[str, str] | None) -> context.Context:
    """The context a carrier (or HTTP headers) names; a malformed or absent
    ``traceparent`` gives an empty context, so the span starts a fresh trace."""
    return propagate.extract(dict(headers or {}))
