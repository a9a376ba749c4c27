"""Workflows: register a definition, list and read them, their stats, and trigger their runs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
import jsonschema
import pika.exceptions
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import store
from roost_api.http import (
    broker_unavailable,
    check_input,
    float_param,
    json_body,
    parsed_body,
    validation_message,
)
from roost_api.resources import resources
from roost_api.store import schedules
from roost_api.trigger_batch import counted
from roost_core import dag, tracing
from roost_core.api_models import BulkTriggerRequest, TriggerRequest
from roost_core.authentication import tenant_of
from roost_core.errors import (
    BadRequestError,
    InvalidDefinitionError,
    InvalidInputError,
    RoostError,
)
from roost_core.wire import WorkflowDefinition

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


async def register_workflow(request: Request) -> Response:
    """
    summary: Register a workflow definition (a new version if it changed)
    responses:
      200: {description: version already known}
      201: {description: new version}
      422: {description: invalid definition}
    """
    tenant = tenant_of(request)
    r = resources(request)
    body = await json_body(request)
    try:
        definition = WorkflowDefinition.model_validate(body)
    except ValidationError as exc:
        raise InvalidDefinitionError(
            validation_message(exc, "invalid workflow definition")
        ) from None
    dag.validate(definition)
    if definition.input_schema is not None:
        try:
            jsonschema.Draft202012Validator.check_schema(definition.input_schema)
        except jsonschema.SchemaError as exc:
            raise InvalidDefinitionError(
                f"input_schema is not a valid JSON Schema: {exc.message}"
            ) from None
    try:
        await anyio.to_thread.run_sync(r.declarer.declare, definition.name)
    except (pika.exceptions.AMQPError, RoostError) as exc:
        raise broker_unavailable(exc) from exc
    async with r.pool.connection() as conn, conn.transaction():
        wv, created = await store.register_workflow(conn, tenant, definition)
        # The version registered is the current one: its on_crons are the crons.
        await schedules.sync_declared(conn, tenant, wv.workflow_id, definition)
    r.versions.forget_latest(tenant, definition.name)
    return JSONResponse(
        {"name": definition.name, "version": wv.version, "created": created},
        status_code=201 if created else 200,
    )


async def list_workflows(request: Request) -> Response:
    """
    summary: List workflows with their newest version
    responses:
      200: {description: workflows}
    """
    tenant = tenant_of(request)
    r = resources(request)
    async with r.pool.connection() as conn:
        return JSONResponse({"workflows": await store.list_workflows(conn, tenant)})


async def workflow_stats(request: Request) -> Response:
    """
    summary: A workflow's recent runs in numbers
    description: >-
      Runs created in the last `hours` (default 24, at most 2160): counts by outcome,
      success rate of those that ended, and p50/p95 duration in seconds.
    parameters:
      - {name: hours, in: query}
    responses:
      200: {description: "{runs, succeeded, failed, cancelled, success_rate,
        duration_p50, duration_p95}"}
      404: {description: unknown workflow}
    """
    tenant = tenant_of(request)
    r = resources(request)
    hours = float_param(request, "hours", 24.0)
    if not 0 < hours <= 2160:
        raise BadRequestError(f"hours={hours!r} must be more than 0 and at most 2160")
    async with r.pool.connection() as conn:
        stats = await store.workflow_stats(conn, tenant, request.path_params["name"], hours)
    return JSONResponse(stats)


async def get_workflow(request: Request) -> Response:
    """
    summary: A workflow's newest version
    responses:
      200: {description: the workflow}
      404: {description: unknown workflow}
    """
    tenant = tenant_of(request)
    r = resources(request)
    name = request.path_params["name"]
    async with r.pool.connection() as conn:
        wv = await store.find_version(conn, tenant, name, request.query_params.get("version"))
    return JSONResponse(
        {"name": name, "version": wv.version, **wv.definition.model_dump(mode="json")}
    )


async def _create(
    request: Request,
    conn: Any,
    tenant: str,
    wv: store.WorkflowVersion,
    requests: list[store.RunRequest],
) -> store.Trigger:
    """Create runs in a transaction of their own, under the trigger's span. Once it has
    committed the runs are durable: publishing their first tasks is the fast path, and
    the scheduler's sweeper sends anything this process fails to."""
    # Pipelined: a statement whose rows the plan does not read costs no round trip.
    async with traced_trigger(request, wv.definition.name), conn.pipeline(), conn.transaction():
        result = await store.create_runs(conn, resources(request).topology, tenant, wv, requests)
    resources(request).relay.submit(result.outbox_rows)
    counted(wv.definition, result)
    return result


async def _warned(request: Request, workflow: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with a ``warning`` when no live worker serves ``workflow``: its runs
    queue until one starts, which the caller should hear of rather than wait out."""
    warning = await resources(request).served.warning(workflow)
    return body if warning is None else {**body, "warning": warning}


async def trigger_run(request: Request) -> Response:
    """
    summary: Trigger a run of a workflow
    description: >-
      The run is created and queued even when no live worker serves the workflow
      (workers may scale up from zero); the 201 response then carries "warning",
      saying so (the key is absent otherwise). Which workflows are served is read
      from the workers' heartbeats at most every 2 s.
    responses:
      201: {description: "run created: the run summary, with warning when unserved"}
      200: {description: the run created earlier with this idempotency key}
      404: {description: unknown workflow}
      422: {description: input rejected by the workflow's input model}
    """
    tenant = tenant_of(request)
    r = resources(request)
    name = request.path_params["name"]
    trigger = await parsed_body(request, TriggerRequest, "invalid trigger request")
    async with r.pool.connection() as conn:
        wv = await r.versions.get(conn, tenant, name, trigger.version)
    check_input(wv.definition, trigger.input)
    store.check_dynamic_keys(wv.definition, [trigger.input])
    async with traced_trigger(request, wv.definition.name):
        one = store.RunRequest(
            trigger.input,
            trigger.idempotency_key,
            trigger.metadata,
            trace_parent=otel_context.get_current(),
        )
        # Concurrent triggers of this workflow share a transaction (group commit).
        created = await r.triggers.create(tenant, wv, one)
    if created.summary is None:  # an earlier run with this idempotency key
        async with r.pool.connection() as conn:
            run = await store.get_run(conn, tenant, created.run_id)
        return JSONResponse(run, status_code=200)
    return JSONResponse(await _warned(request, name, created.summary), status_code=201)


async def trigger_runs(request: Request) -> Response:
    """
    summary: Trigger many runs of a workflow in one request and one transaction
    description: >-
      Body {"runs": [{"input": ..., "idempotency_key": ...}, ...], "version": ...},
      at most 1000 runs. Every input is checked first; one bad input rejects the
      whole request (422, naming its index and field) and creates nothing. As for a
      single trigger, "warning" says when no live worker serves the workflow.
    responses:
      201: {description: "{runs: each run id, with created false for an earlier
        idempotent run; warning when unserved}"}
      404: {description: unknown workflow}
      422: {description: an input rejected by the workflow's input model}
    """
    tenant = tenant_of(request)
    r = resources(request)
    name = request.path_params["name"]
    bulk = await parsed_body(request, BulkTriggerRequest, "invalid bulk trigger request")
    async with r.pool.connection() as conn:
        wv = await r.versions.get(conn, tenant, name, bulk.version)
        for index, item in enumerate(bulk.runs):
            try:
                check_input(wv.definition, item.input)
            except InvalidInputError as exc:
                raise InvalidInputError(f"runs[{index}]: {exc}") from None
        requests = [store.RunRequest(i.input, i.idempotency_key, i.metadata) for i in bulk.runs]
        result = await _create(request, conn, tenant, wv, requests)
    runs = [{"id": c.run_id, "created": c.summary is not None} for c in result.runs]
    return JSONResponse(await _warned(request, name, {"runs": runs}), status_code=201)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/workflows", register_workflow, methods=["POST"]),
    Route("/api/v1/workflows", list_workflows, methods=["GET"]),
    Route("/api/v1/workflows/{name}", get_workflow, methods=["GET"]),
    Route("/api/v1/workflows/{name}/stats", workflow_stats, methods=["GET"]),
    Route("/api/v1/workflows/{name}/runs", trigger_run, methods=["POST"]),
    Route("/api/v1/workflows/{name}/runs/bulk", trigger_runs, methods=["POST"]),
]
