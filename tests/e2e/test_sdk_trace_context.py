"""An application with its own OpenTelemetry span triggers a run through the SDK (or a
script runs ``roost run`` with ``TRACEPARENT`` in its environment): the run joins the
caller's trace, as it does when raw HTTP sends the ``traceparent`` header (issue #20);
outside any span, a run starts a trace of its own. A run a task triggers (sync or async)
joins the task's trace, its trigger nested under the task's span."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from harness import Process, Stack
from roost import Roost, RunTrace, Span


@pytest.fixture(scope="module")
def spawner_worker(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    proc = stack.start_worker(
        "roost_testapps.flows:spawner", processes=1, threads=4, name="spawner"
    )
    yield proc
    proc.stop()


def _stored(roost: Roost, run_id: str, *names: str) -> tuple[RunTrace, dict[str, Span]]:
    """The run's stored trace and its spans by name, once every one of ``names`` is
    stored (a span is stored a fraction of a second after it ends)."""
    deadline = time.monotonic() + 30
    while True:
        stored = roost.runs.trace(run_id)
        spans = {s.name: s for s in stored.spans}
        if all(name in spans for name in names):
            return stored, spans
        assert time.monotonic() < deadline, f"run {run_id} has spans {sorted(spans)}"
        time.sleep(0.2)


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


def test_a_run_triggered_inside_a_task_joins_the_tasks_trace(
    stack: Stack, flows: ModuleType, spawner_worker: Process
) -> None:
    roost = flows.roost
    ref = flows.spawning.run({}, wait_for_result=False)
    outputs = ref.result(timeout=60)  # each task triggered a run of t-spawned

    tasks = ("spawn_sync", "spawn_async")
    parent, parent_spans = _stored(roost, ref.id, *(f"task t-spawning.{t}" for t in tasks))
    for task in tasks:
        child, child_spans = _stored(roost, outputs[task]["child"], "trigger t-spawned")
        assert child.trace_id == parent.trace_id, task
        # In the waterfall, the child's trigger hangs under the task that made it.
        trigger = child_spans["trigger t-spawned"]
        assert trigger.parent_span_id == parent_spans[f"task t-spawning.{task}"].span_id, task
