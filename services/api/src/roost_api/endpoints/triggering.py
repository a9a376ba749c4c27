"""Triggering a run: the trigger's span, the warning when no worker serves the workflow,
and the answer to ``Prefer: respond-async`` (an accepted run, roost_api.accept), shared
by the trigger endpoints (roost_api.endpoints.workflows)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pika.exceptions
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from roost_api import metrics as api_metrics
from roost_api import store
from roost_api.resources import resources
from roost_core import run_ids, tracing
from roost_core.api_models import TriggerRequest
from roost_core.engine.concurrency import group_keys
from roost_core.errors import BrokerUnavailableError
from roost_core.labels import DesiredLabel
from roost_core.statuses import RunStatus
from roost_core.wire import RunAccepted, WorkflowDefinition

_tracer = tracing.tracer("roost.api")


@contextlib.asynccontextmanager
async def traced_trigger(request: Request, workflow: str) -> AsyncIterator[None]:
    """The trigger's span, child of the caller's ``traceparent`` if it sent a valid
    one (a malformed one is ignored: the run gets a fresh trace, never an error), or
    of the request's server span when the Starlette instrumentation made one (it
    took the caller's ``traceparent`` already)."""
    current = trace.get_current_span().get_span_context().is_valid
    with (
        _tracer.start_as_current_span(
            f"trigger {workflow}",
            context=None if current else tracing.extract(request.headers),
            kind=SpanKind.INTERNAL if current else SpanKind.SERVER,
            attributes={"roost.workflow": workflow},
        ),
        store.run_spans_end_after(),
    ):
        yield


async def warned(request: Request, workflow: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with a ``warning`` when no live worker serves ``workflow``: its runs
    queue until one starts, which the caller should hear of rather than wait out."""
    warning = await resources(request).served.warning(workflow)
    return body if warning is None else {**body, "warning": warning}


def may_accept(request: Request, trigger: TriggerRequest, definition: WorkflowDefinition) -> bool:
    """Whether to answer once the trigger is durable in RabbitMQ (the client asked, with
    ``Prefer: respond-async``, RFC 7240) rather than once its run is in PostgreSQL.
    Triggers whose answer needs PostgreSQL take the usual way: an idempotency key (the
    earlier run's id is the answer), a parent task (resolved and linked), rate limits
    with named keys (whose existence is checked)."""
    return (
        "respond-async" in request.headers.get("prefer", "")
        and trigger.idempotency_key is None
        and trigger.parent is None
        and not store.uses_named_limits(definition)
    )


async def accept_run(
    request: Request, tenant: str, wv: store.WorkflowVersion, trigger: TriggerRequest
) -> Response:
    """Accept the run: checked here (what the scheduler's creation could refuse), durable
    once RabbitMQ confirms it, created by the scheduler (roost_api.accept)."""
    r = resources(request)
    group_keys(wv.definition, [trigger.input])  # a bad concurrency key: 422 now
    run_id = run_ids.new_run_id()
    async with traced_trigger(request, wv.definition.name):
        trace.get_current_span().set_attribute("roost.run_id", run_id)
        message = RunAccepted(
            tenant_id=tenant,
            workflow_id=wv.workflow_id,
            version_id=wv.version_id,
            run_id=run_id,
            input=trigger.input,
            metadata=trigger.metadata or None,
            desired_labels=labels_json(trigger.desired_labels),
            priority=trigger.priority,
            trace=tracing.carrier() or None,
        )
        try:
            await r.acceptor.accept(message)
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise BrokerUnavailableError(
                f"RabbitMQ did not confirm the trigger of {wv.definition.name!r} ({exc!r}):"
                " trigger again"
            ) from exc
    api_metrics.RUNS_TRIGGERED.labels(wv.definition.name).inc()
    body = {
        "id": run_id,
        "workflow": wv.definition.name,
        "workflow_version": wv.version,
        "status": RunStatus.QUEUED.value,
    }
    return JSONResponse(
        await warned(request, wv.definition.name, body),
        status_code=202,
        headers={"Preference-Applied": "respond-async", "Location": f"/api/v1/runs/{run_id}"},
    )


def labels_json(labels: dict[str, DesiredLabel] | None) -> dict[str, Any] | None:
    """A run's desired labels as its row keeps them (JSON; checked by the model)."""
    if not labels:
        return None
    return {k: v.model_dump() for k, v in labels.items()}
