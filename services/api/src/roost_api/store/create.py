"""Creating runs (roost_core.engine.trigger): one statement set however many, with the
summaries the api answers with, built from what was written."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from roost_api.store.common import Conn, iso
from roost_api.store.rate_limits import check_admissible
from roost_api.store.runs import get_run
from roost_api.store.workflows import WorkflowVersion
from roost_core import outbox, tracing
from roost_core.engine import trigger
from roost_core.engine.plan import run_async
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.topology import Topology

_tracer = tracing.tracer("roost.api")


@dataclass(frozen=True)
class CreatedRun:
    run_id: str
    summary: dict[str, Any] | None  # None: an existing run had this idempotency key


@dataclass(frozen=True)
class Trigger:
    runs: list[CreatedRun]  # one per request, in order
    outbox_rows: list[outbox.OutboxRow]  # to publish after commit


@dataclass(frozen=True)
class RunRequest:
    input: Any
    idempotency_key: str | None = None
    metadata: dict[str, str] | None = None
    # The context the run's span is a child of (the request's trigger span), when the
    # run is created away from its request (roost_api.trigger_batch); None: the current.
    trace_parent: otel_context.Context | None = None
    # The task the run is a child of (issue #18; roost_api.store.children).
    parent: trigger.ParentLink | None = None
    # Its override of the tasks' desired labels (issue #21), as JSON.
    desired_labels: dict[str, Any] | None = None
    priority: int | None = None  # 1-3; None: the workflow's default (engine.priority)


# Run spans end only once their runs have committed: the span store keeps spans of
# runs that exist, and a span exported before its run's commit would be dropped.
_pending_run_spans: ContextVar[list[trace.Span] | None] = ContextVar(
    "roost_pending_run_spans", default=None
)


@contextlib.contextmanager
def run_spans_end_after() -> Iterator[None]:
    """End the run spans that ``create_runs`` starts inside this block when it exits:
    wrap the transaction with it."""
    token = _pending_run_spans.set([])
    try:
        yield
    finally:
        pending = _pending_run_spans.get() or []
        _pending_run_spans.reset(token)
        for span in pending:
            span.end()


async def create_runs(
    conn: Conn,
    topology: Topology,
    tenant_id: str,
    wv: WorkflowVersion,
    requests: list[RunRequest],
) -> Trigger:
    """Insert runs, their task runs, their first events and their root tasks' messages,
    in the caller's transaction, with a fixed number of statements however many runs
    there are. A request whose idempotency key was already used for this workflow (or
    earlier in the same list) gets the existing run and creates nothing."""
    definition = wv.definition
    inputs = [r.input for r in requests]
    await check_admissible(conn, tenant_id, definition, inputs)
    run_ids = [uuid.uuid4() for _ in requests]
    # One trace per run: a span for the run, child of the trigger's (and of the caller's
    # traceparent, if it sent one); its context travels in every task message. Free
    # (and empty) when tracing is off.
    traces: list[dict[str, str] | None] = [None] * len(run_ids)
    span_parents = [r.trace_parent for r in requests]
    if tracing.enabled() or any(_traced(p) for p in span_parents):
        pending = _pending_run_spans.get()
        for index, run_id in enumerate(run_ids):
            parent = span_parents[index]
            if parent is not None or len(run_ids) == 1:
                # The trigger's span is then this run's root: the span store keeps it
                # with the run. (A bulk trigger's span belongs to no one run.)
                trace.get_current_span(parent).set_attribute("roost.run_id", str(run_id))
            span = _tracer.start_span(
                f"run {definition.name}",
                context=parent,
                attributes={"roost.run_id": str(run_id), "roost.workflow": definition.name},
            )
            traces[index] = tracing.carrier(trace.set_span_in_context(span)) or None
            if pending is None:
                span.end()
            else:
                pending.append(span)
    async with conn.cursor() as c:
        done = await run_async(
            c,
            trigger.trigger(
                topology,
                tenant_id,
                wv.workflow_id,
                wv.version_id,
                definition,
                [
                    trigger.Request(
                        i,
                        r.input,
                        r.idempotency_key,
                        r.metadata,
                        t,
                        r.parent,
                        r.desired_labels,
                        r.priority,
                    )
                    for i, r, t in zip(run_ids, requests, traces, strict=True)
                ],
            ),
        )
    inserted, existing, cancelled = done.inserted, done.existing, done.cancelled
    rows = done.outbox_rows
    created: list[CreatedRun] = []
    tasks_of: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for task_run_id, run_id, name, parents, is_root in done.task_rows:
        tasks_of.setdefault(run_id, []).append(
            {
                "id": str(task_run_id),
                "name": name,
                "status": (TaskStatus.QUEUED if is_root else TaskStatus.PENDING).value,
                "parents": parents,
                "attempt": 1 if is_root else 0,
                "output": None,
                "error": None,
                "worker_id": None,
                "queued_at": iso(inserted[run_id]) if is_root else None,
                "started_at": None,
                "finished_at": None,
                "attempts": [],
            }
        )
    for request, run_id in zip(requests, run_ids, strict=True):
        if run_id not in inserted:
            assert request.idempotency_key is not None
            created.append(CreatedRun(existing[request.idempotency_key], None))
            continue
        # The same shape GET /runs/{id} returns, built from what was just written.
        summary = {
            "id": str(run_id),
            "workflow": definition.name,
            "workflow_version": wv.version,
            "status": RunStatus.QUEUED.value,
            "idempotency_key": request.idempotency_key,
            "created_at": iso(inserted[run_id]),
            "started_at": None,
            "finished_at": None,
            "metadata": request.metadata or {},
            "priority": request.priority or definition.default_priority or 1,
            "trigger": None,  # triggered through the api, not by a schedule
            "input": request.input,
            "output": None,
            "error": None,
            "tasks": tasks_of[run_id],
        }
        if str(run_id) in cancelled:  # by the workflow's concurrency: say so now
            summary = await get_run(conn, tenant_id, str(run_id))
        created.append(CreatedRun(str(run_id), summary))
    return Trigger(created, rows)


def _traced(parent: otel_context.Context | None) -> bool:
    """Whether a run created under ``parent`` (None: the current context) is traced."""
    return trace.get_current_span(parent).get_span_context().is_valid
