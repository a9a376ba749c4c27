"""OpenTelemetry tracing, configured only by the standard ``OTEL_*`` variables.

With no exporter configured, the global tracer provider stays OpenTelemetry's no-op one:
spans cost next to nothing, carriers are empty, nothing is stored. With one
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, or
``OTEL_TRACES_EXPORTER=otlp|console``), every process exports its spans in batches; the
sampler comes from ``OTEL_TRACES_SAMPLER`` as the SDK reads it.

A run's trace crosses processes as a W3C trace-context carrier (``traceparent``): the api
stores the run's on the run and puts it in every task message (``TaskMessage.trace``), so
each attempt's span on a worker is a child of its run's span.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

_configured = False


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


def setup(service: str) -> bool:
    """Install a tracer provider for this process if an exporter is configured; return
    whether tracing is on. The service name is ``OTEL_SERVICE_NAME`` or ``roost-<service>``."""
    global _configured
    if _configured:
        return True
    exporter = _exporter()
    if exporter is None:
        return False
    name = os.environ.get("OTEL_SERVICE_NAME") or f"roost-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
    return True


def enabled() -> bool:
    """Whether this process exports spans (else skip building spans nobody records)."""
    return _configured


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def carrier() -> dict[str, str]:
    """The current context as a W3C trace-context carrier (empty when not tracing)."""
    out: dict[str, str] = {}
    propagate.inject(out)
    return out


def extract(headers: Mapping[str, str] | None) -> context.Context:
    """The context a carrier (or HTTP headers) names; a malformed or absent
    ``traceparent`` gives an empty context, so the span starts a fresh trace."""
    return propagate.extract(dict(headers or {}))
