"""An application with its own OpenTelemetry span triggers a run through the SDK (or a
script runs ``roost run`` with ``TRACEPARENT`` in its environment): the run joins the
caller's trace, as it does when raw HTTP sends the ``traceparent`` header (issue #20);
outside any span, a run starts a trace of its own."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import uuid
from types import ModuleType
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from harness import Stack


def _in_span(trace_id: int) -> object:
    span = NonRecordingSpan(
        SpanContext(
            trace_id=trace_id,
            span_id=random.getrandbits(64) | 1,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    )
    return context.attach(trace.set_span_in_context(span))


def test_a_run_triggered_inside_the_callers_span_joins_its_trace(
    stack: Stack, flows: ModuleType
) -> None:
    roost = flows.roost
    wf = roost.workflow(f"sdk-trace-{uuid.uuid4().hex[:6]}")

    @wf.task()
    def only(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {}

    sync_trace, async_trace = random.getrandbits(128) | 1, random.getrandbits(128) | 1
    token = _in_span(sync_trace)
    try:
        inside = wf.run({}, wait_for_result=False)
    finally:
        context.detach(token)  # type: ignore[arg-type]

    async def from_asyncio() -> str:
        token = _in_span(async_trace)
        try:
            ref = await wf.aio_run({}, wait_for_result=False)
        finally:
            context.detach(token)  # type: ignore[arg-type]
        await roost.aclose()
        return ref.id

    inside_async = asyncio.run(from_asyncio())
    outside = wf.run({}, wait_for_result=False)

    assert roost.runs.trace(inside.id).trace_id == format(sync_trace, "032x")
    assert roost.runs.trace(inside_async).trace_id == format(async_trace, "032x")
    fresh = roost.runs.trace(outside.id).trace_id
    assert fresh not in (format(sync_trace, "032x"), format(async_trace, "032x"))
    for ref_id in (inside.id, inside_async, outside.id):
        roost.runs.cancel(ref_id)


def test_roost_run_with_traceparent_in_its_environment_joins_that_trace(
    stack: Stack, flows: ModuleType
) -> None:
    wf = flows.roost.workflow(f"cli-trace-{uuid.uuid4().hex[:6]}")

    @wf.task()
    def only(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {}

    wf.register()
    trace_id = format(random.getrandbits(128) | 1, "032x")
    done = subprocess.run(
        [sys.executable, "-m", "roost.cli", "run", wf.name],
        env={**stack.env, "TRACEPARENT": f"00-{trace_id}-{'2' * 16}-01"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[1]  # "run <id> QUEUED"
    assert flows.roost.runs.trace(run_id).trace_id == trace_id
    flows.roost.runs.cancel(run_id)
