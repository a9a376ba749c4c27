"""Workflows: register a definition, list and read them, their stats, and trigger their runs."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import jsonschema
import pika.exceptions
from opentelemetry import context as otel_context
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import store
from roost_api.endpoints import triggering
from roost_api.http import (
    broker_unavailable,
    check_input,
    parsed_body,
    query_of,
    storable_body,
    validated_json,
)
from roost_api.openapi import operation
from roost_api.params import StatsQuery, VersionQuery
from roost_api.resources import resources
from roost_api.routing import resource
from roost_api.store import schedules
from roost_api.trigger_batch import counted
from roost_core import dag, pipelined
from roost_core.api_models import BulkTriggerRequest, Run, TriggerRequest
from roost_core.api_shapes import (
    AcceptedRun,
    BulkTriggered,
    Registered,
    TriggeredRunBody,
    WorkflowList,
    WorkflowStats,
    WorkflowVersion,
)
from roost_core.authentication import tenant_of
from roost_core.engine.trigger import ParentLink
from roost_core.errors import (
    InvalidDefinitionError,
    InvalidInputError,
    RoostError,
)
from roost_core.wire import WorkflowDefinition


@operation(
    "Register a workflow definition (a new version if it changed)",
    tag="workflows",
    description=(
        "Workers register what they serve when they start. A definition equal to a known "
        "version is that version (200); else it is the workflow's newest version (201). "
        "Checked: the task graph (no cycle, no unknown parent), the input schema, the "
        "concurrency and rate-limit expressions, the event patterns and cron expressions."
    ),
    body=WorkflowDefinition,
    ok={200: ("the version was known", Registered), 201: ("a new version", Registered)},
    errors={422: "an invalid definition, naming what is wrong"},
)
async def register_workflow(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    definition = validated_json(
        WorkflowDefinition,
        await storable_body(request),
        "invalid workflow definition",
        InvalidDefinitionError,
    )
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


@operation(
    "List workflows with their newest version",
    tag="workflows",
    ok={200: ("the workflows, by name", WorkflowList)},
)
async def list_workflows(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    async with r.pool.connection() as conn:
        return JSONResponse({"workflows": await store.list_workflows(conn, tenant)})


@operation(
    "A workflow's recent runs in numbers",
    tag="workflows",
    description=(
        "Runs created in the last `hours` (default 24, at most 2160): counts by outcome, "
        "success rate of those that ended, and p50/p95 duration in seconds."
    ),
    query=StatsQuery,
    ok={200: ("the numbers", WorkflowStats)},
    errors={404: "unknown workflow"},
)
async def workflow_stats(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    hours = query_of(request, StatsQuery).hours
    async with r.pool.connection() as conn:
        stats = await store.workflow_stats(conn, tenant, request.path_params["name"], hours)
    return JSONResponse(stats)


@operation(
    "A workflow's newest version (or the one asked for)",
    tag="workflows",
    query=VersionQuery,
    ok={200: ("the version's definition", WorkflowVersion)},
    errors={404: "unknown workflow, or a version it does not have"},
)
async def get_workflow(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    name = request.path_params["name"]
    version = query_of(request, VersionQuery).version
    async with r.pool.connection() as conn:
        wv = await store.find_version(conn, tenant, name, version)
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
    async with triggering.traced_trigger(request, wv.definition.name), pipelined.atransaction(conn):
        result = await store.create_runs(conn, resources(request).topology, tenant, wv, requests)
    resources(request).relay.submit(result.outbox_rows)
    counted(wv.definition, result)
    return result


@operation(
    "Trigger a run of a workflow",
    tag="workflows",
    description=(
        "The run is created and queued even when no live worker serves the workflow "
        "(workers may scale up from zero); the 201 response then carries warning, saying "
        "so (the key is absent otherwise). Which workflows are served is read from the "
        "workers' heartbeats at most every 2 s."
    ),
    body=TriggerRequest,
    body_required=False,
    ok={
        200: ("the run created earlier with this idempotency key", Run),
        201: ("the run, created", TriggeredRunBody),
        202: (
            "with Prefer: respond-async, the run accepted: durable in RabbitMQ, created by"
            " the scheduler moments later (GET /api/v1/runs/{id} waits for it)",
            AcceptedRun,
        ),
    },
    errors={
        404: "unknown workflow, or a version it does not have",
        422: "the input is rejected by the workflow's input model (the field is named)",
    },
)
async def trigger_run(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    name = request.path_params["name"]
    trigger = await parsed_body(request, TriggerRequest, "invalid trigger request")
    wv = r.versions.cached(tenant, name, trigger.version)
    parent = None
    if wv is None or trigger.parent:  # a connection only when there is something to read
        async with r.pool.connection() as conn:
            if wv is None:
                wv = await r.versions.get(conn, tenant, name, trigger.version)
            if trigger.parent:
                [parent] = await store.resolve_parents(conn, tenant, [trigger.parent])
    check_input(wv.definition, trigger.input)
    store.check_dynamic_keys(wv.definition, [trigger.input])
    if triggering.may_accept(request, trigger, wv.definition):
        return await triggering.accept_run(request, tenant, wv, trigger)
    async with triggering.traced_trigger(request, wv.definition.name):
        one = _run_request(
            trigger.input,
            trigger.idempotency_key,
            trigger.metadata,
            parent,
            trace_parent=otel_context.get_current(),
            desired_labels=triggering.labels_json(trigger.desired_labels),
            priority=trigger.priority,
        )
        # Concurrent triggers of this workflow share a transaction (group commit).
        created = await r.triggers.create(tenant, wv, one)
    if created.summary is None:  # an earlier run with this idempotency key
        async with r.pool.connection() as conn:
            run = await store.get_run(conn, tenant, created.run_id)
        return JSONResponse(run, status_code=200)
    return JSONResponse(await triggering.warned(request, name, created.summary), status_code=201)


@operation(
    "Trigger many runs of a workflow in one request and one transaction",
    tag="workflows",
    description=(
        "At most 1000 runs. Every input is checked first; one bad input rejects the whole "
        "request (422, naming its index and field) and creates nothing. As for a single "
        "trigger, warning says when no live worker serves the workflow."
    ),
    body=BulkTriggerRequest,
    ok={201: ("each run's id, in request order", BulkTriggered)},
    errors={
        404: "unknown workflow, or a version it does not have",
        422: "an input is rejected by the workflow's input model (its index is named)",
    },
)
async def trigger_runs(request: Request) -> Response:
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
        parents = await store.resolve_parents(conn, tenant, [i.parent for i in bulk.runs])
        requests = [
            _run_request(
                i.input,
                i.idempotency_key,
                i.metadata,
                p,
                desired_labels=triggering.labels_json(i.desired_labels),
                priority=i.priority,
            )
            for i, p in zip(bulk.runs, parents, strict=True)
        ]
        result = await _create(request, conn, tenant, wv, requests)
    runs = [{"id": c.run_id, "created": c.summary is not None} for c in result.runs]
    return JSONResponse(await triggering.warned(request, name, {"runs": runs}), status_code=201)


def _run_request(
    run_input: Any,
    idempotency_key: str | None,
    metadata: dict[str, str],
    parent: tuple[ParentLink, dict[str, str]] | None,
    trace_parent: otel_context.Context | None = None,
    desired_labels: dict[str, Any] | None = None,
    priority: int | None = None,
) -> store.RunRequest:
    """A run to create; a child run (``parent``: its task, and its run's metadata) gets
    an idempotency key made of its parent task and key unless it has one, and its
    parent's metadata unless it has its own."""
    if parent is None:
        return store.RunRequest(
            run_input,
            idempotency_key,
            metadata,
            trace_parent=trace_parent,
            desired_labels=desired_labels,
            priority=priority,
        )
    link, inherited = parent
    return store.RunRequest(
        run_input,
        store.child_idempotency_key(idempotency_key, link),
        metadata or inherited,
        trace_parent=trace_parent,
        parent=link,
        desired_labels=desired_labels,
        priority=priority,
    )


ROUTES: list[BaseRoute] = [
    resource("/api/v1/workflows", POST=register_workflow, GET=list_workflows),
    Route("/api/v1/workflows/{name}", get_workflow, methods=["GET"]),
    Route("/api/v1/workflows/{name}/stats", workflow_stats, methods=["GET"]),
    Route("/api/v1/workflows/{name}/runs", trigger_run, methods=["POST"]),
    Route("/api/v1/workflows/{name}/runs/bulk", trigger_runs, methods=["POST"]),
]
