"""A light span (roost_core.light_spans) ends as the record an SDK span would have made:
its parent, its run, what the task set on it, an exception and a status; and a span the
task starts inside it is its child and belongs to its run."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from roost_core.light_spans import LightSpan, parse_traceparent
from roost_core.tracing import RunScope

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


def test_only_a_sampled_well_formed_traceparent_is_a_parent() -> None:
    assert parse_traceparent({"traceparent": f"00-{TRACE}-{PARENT}-01"}) == (TRACE, PARENT)
    for bad in (f"00-{TRACE}-{PARENT}-00", f"00-{'0' * 32}-{PARENT}-01", "00-xyz-abc-01", ""):
        assert parse_traceparent({"traceparent": bad}) is None, bad
    assert parse_traceparent(None) is None


def test_the_record_has_its_parent_run_attributes_exception_and_status() -> None:
    span = LightSpan((TRACE, PARENT), "task wf.a", "consumer", {"roost.run_id": "r1"})
    span.set_attribute("user.key", 7)
    try:
        raise ValueError("boom")
    except ValueError as exc:
        span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, "ValueError: boom"))
    record = span.record("roost-worker")
    assert record["trace_id"] == TRACE and record["parent_span_id"] == PARENT
    assert record["span_id"] == format(span.get_span_context().span_id, "016x")
    assert record["run_id"] == "r1" and record["attributes"]["user.key"] == 7
    assert record["status"] == "error" and record["status_message"] == "ValueError: boom"
    (event,) = record["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert "boom" in event["attributes"]["exception.stacktrace"]
    assert record["start"] <= record["end"]


class _Kept(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: object) -> SpanExportResult:
        self.spans += list(spans)  # type: ignore[call-overload]
        return SpanExportResult.SUCCESS


def test_a_span_started_inside_is_its_child_in_its_run() -> None:
    kept = _Kept()
    provider = TracerProvider()
    provider.add_span_processor(RunScope())
    provider.add_span_processor(SimpleSpanProcessor(kept))
    span = LightSpan((TRACE, PARENT), "task wf.a", "consumer", {"roost.run_id": "r1"})
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        with provider.get_tracer("user").start_as_current_span("call model"):
            pass
    finally:
        otel_context.detach(token)
    (child,) = kept.spans
    assert child.parent is not None
    assert child.parent.span_id == span.get_span_context().span_id
    assert format(child.context.trace_id, "032x") == TRACE
    assert child.attributes is not None and child.attributes["roost.run_id"] == "r1"


def test_attributes_opentelemetry_would_refuse_are_dropped_and_the_record_stays_json() -> None:
    import json

    span = LightSpan((TRACE, PARENT), "task wf.a", "consumer", {"roost.run_id": "r1"})
    span.set_attribute("ok", 1.5)
    span.set_attribute("tags", ("a", "b"))
    span.set_attribute("thing", object())
    span.add_event("step", {"n": 1, "bad": object()})
    record = span.record("roost-worker")
    assert record["attributes"] == {"roost.run_id": "r1", "ok": 1.5, "tags": ["a", "b"]}
    assert record["events"][0]["attributes"] == {"n": 1}
    json.dumps(record)
