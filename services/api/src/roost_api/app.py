"""The api's routes: a versioned JSON API under /api/v1, plus /health and /ready."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import jsonschema
import pika.exceptions
import psycopg
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator

from roost_api import metrics as api_metrics
from roost_api import ratelimits, store
from roost_api.settings import ApiSettings
from roost_api.waiters import RunWaiters
from roost_core import broker, dag, metadata, metrics, tracing, triggers
from roost_core.auth import MAX_STREAM_TOKEN_SECONDS, TokenVerifier, mint_stream_token
from roost_core.db import async_pool, translate_errors
from roost_core.errors import (
    BadRequestError,
    BrokerUnavailableError,
    ConflictError,
    InvalidDefinitionError,
    InvalidInputError,
    RoostError,
)
from roost_core.metadata import Metadata
from roost_core.outbox import OutboxRelay
from roost_core.statuses import RunStatus
from roost_core.topology import Topology, declare_core, declare_task_queue
from roost_core.wire import WorkflowDefinition

logger = logging.getLogger(__name__)
_tracer = tracing.tracer("roost.api")

MAX_WAIT_SECONDS = 60.0
MAX_PAGE = 500
MAX_BULK = 1000


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: Any = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=255)
    version: str | None = None
    metadata: Metadata = Field(default_factory=dict)


class BulkItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: Any = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=255)
    metadata: Metadata = Field(default_factory=dict)


class BulkTriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    runs: list[BulkItem] = Field(min_length=1, max_length=MAX_BULK)
    version: str | None = None


class EventItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    data: Any = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=255)


class BulkEventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventItem] = Field(min_length=1, max_length=MAX_BULK)


class Declarer:
    """Declares broker queues for newly registered workflows (pika is blocking and not
    thread-safe, so one connection behind a lock, used from worker threads)."""

    def __init__(self, url: str, topology: Topology) -> None:
        self._url = url
        self._topology = topology
        self._lock = threading.Lock()
        self._connection: Any = None

    def declare(self, workflow: str) -> None:
        with self._lock:
            for attempt in range(2):
                try:
                    if self._connection is None or not self._connection.is_open:
                        self._connection = broker.connect(self._url)
                    channel = self._connection.channel()
                    declare_core(channel, self._topology)
                    declare_task_queue(channel, self._topology.task_queue(workflow))
                    channel.close()
                    return
                except pika.exceptions.AMQPError:
                    self._connection = None
                    if attempt:
                        raise

    def ready_counts(self, workflows: list[str]) -> dict[str, int]:
        """Messages ready on each workflow's task queue (what KEDA scales workers on),
        asked of RabbitMQ with a passive declare; a queue that does not exist yet is
        left out."""
        with self._lock:
            for attempt in range(2):
                try:
                    return self._ready_counts(workflows)
                except pika.exceptions.AMQPConnectionError:  # StreamLostError included
                    # A connection the broker closed while the api was idle: once more.
                    self._connection = None
                    if attempt:
                        raise
        return {}

    def _ready_counts(self, workflows: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        if self._connection is None or not self._connection.is_open:
            self._connection = broker.connect(self._url)
        channel = self._connection.channel()
        try:
            for workflow in workflows:
                try:
                    ok = channel.queue_declare(self._topology.task_queue(workflow), passive=True)
                except pika.exceptions.ChannelClosedByBroker:
                    channel = self._connection.channel()  # 404: no such queue yet
                    continue
                counts[workflow] = int(ok.method.message_count)
        finally:
            if channel.is_open:
                channel.close()
        return counts

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._connection.is_open:
                self._connection.close()


def check_input(definition: WorkflowDefinition, run_input: Any) -> None:
    """Validate ``run_input`` against the workflow's input schema, naming the bad field."""
    if definition.input_schema is None:
        return
    validator = jsonschema.Draft202012Validator(definition.input_schema)
    errors = sorted(validator.iter_errors(run_input), key=lambda e: list(e.absolute_path))
    if errors:
        parts = []
        for err in errors:
            where = ".".join(str(p) for p in err.absolute_path) or "input"
            if err.validator == "required":
                missing = err.message.split("'")[1] if "'" in err.message else err.message
                where = ".".join([*(str(p) for p in err.absolute_path), missing])
                parts.append(f"{where}: field required")
            else:
                parts.append(f"{where}: {err.message}")
        raise InvalidInputError(
            f"input for workflow {definition.name!r} is invalid: " + "; ".join(parts)
        )


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from exc


def _validation_message(exc: ValidationError, what: str) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
    return f"{what}: " + "; ".join(parts)


def _encode_cursor(created_at: str, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at}|{run_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, run_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), run_id
    except Exception as exc:
        raise BadRequestError(f"cursor {cursor!r} is malformed") from exc


def create_app(settings: ApiSettings) -> Starlette:
    topology = Topology(settings.namespace)
    pool = async_pool(settings.database_url, settings.db_pool_size)
    verifier = TokenVerifier(pool, settings.token_cache_seconds)
    relay = OutboxRelay(settings.broker_url, settings.database_url, name="api-outbox-relay")
    declarer = Declarer(settings.broker_url, topology)
    waiters = RunWaiters(settings.database_url)
    versions = store.VersionCache()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=False)
        relay.start()
        await waiters.start()
        logger.info("api ready", extra={"action": "api_started", "port": settings.api_port})
        async with api_metrics.refreshing(
            pool,
            settings.metrics_refresh_seconds,
            settings.worker_heartbeat_timeout_seconds,
            declarer.ready_counts,
            topology.task_queue,
        ):
            yield
        await waiters.stop()
        relay.stop()
        declarer.close()
        await pool.close()

    Handler = Callable[[Request, str], Awaitable[Response]]

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

    def counted(definition: WorkflowDefinition, result: store.Trigger) -> None:
        """Count what a committed trigger created (and, under a cancelling concurrency
        strategy, ended)."""
        created = sum(1 for c in result.runs if c.summary is not None)
        api_metrics.RUNS_TRIGGERED.labels(definition.name).inc(created)
        if definition.concurrency is not None:
            metrics.count_rows(result.outbox_rows)

    def authed(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            with translate_errors():
                tenant = await verifier.tenant_for(request.headers.get("authorization"))
                return await handler(request, tenant)

        endpoint.__doc__ = handler.__doc__
        endpoint.__name__ = handler.__name__
        return endpoint

    async def health(request: Request) -> Response:
        """
        summary: Liveness
        responses:
          200: {description: the process is up}
        """
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        """
        summary: Readiness (PostgreSQL reachable)
        responses:
          200: {description: ready}
          503: {description: a dependency is down}
        """
        try:
            async with pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:
            return JSONResponse(
                {"status": "unavailable", "error": f"PostgreSQL: {exc}"}, status_code=503
            )
        return JSONResponse({"status": "ready"})

    async def register_workflow(request: Request, tenant: str) -> Response:
        """
        summary: Register a workflow definition (a new version if it changed)
        responses:
          200: {description: version already known}
          201: {description: new version}
          422: {description: invalid definition}
        """
        body = await _json_body(request)
        try:
            definition = WorkflowDefinition.model_validate(body)
        except ValidationError as exc:
            raise InvalidDefinitionError(
                _validation_message(exc, "invalid workflow definition")
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
            await anyio.to_thread.run_sync(declarer.declare, definition.name)
        except (pika.exceptions.AMQPError, RoostError) as exc:
            raise broker_unavailable(exc) from exc
        async with pool.connection() as conn, conn.transaction():
            wv, created = await store.register_workflow(conn, tenant, definition)
        versions.forget_latest(tenant, definition.name)
        return JSONResponse(
            {"name": definition.name, "version": wv.version, "created": created},
            status_code=201 if created else 200,
        )

    async def list_workflows(request: Request, tenant: str) -> Response:
        """
        summary: List workflows with their newest version
        responses:
          200: {description: workflows}
        """
        async with pool.connection() as conn:
            return JSONResponse({"workflows": await store.list_workflows(conn, tenant)})

    async def workflow_stats(request: Request, tenant: str) -> Response:
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
        hours = _float_param(request, "hours", 24.0)
        if not 0 < hours <= 2160:
            raise BadRequestError(f"hours={hours!r} must be more than 0 and at most 2160")
        async with pool.connection() as conn:
            stats = await store.workflow_stats(conn, tenant, request.path_params["name"], hours)
        return JSONResponse(stats)

    async def activity(request: Request, tenant: str) -> Response:
        """
        summary: The last minutes of activity, a point per minute (for charts)
        description: >-
          Runs that ended each minute by final state, the p50/p95 duration of their
          tasks, and the attempts ready on each workflow's task queue now.
        parameters:
          - {name: minutes, in: query, description: "1..1440, default 60"}
        responses:
          200: {description: "{minutes, points: [...], ready: {workflow: n}}"}
        """
        minutes = _int_param(request, "minutes", 60, 1, 1440)
        async with pool.connection() as conn:
            body = await store.activity(conn, tenant, minutes)
            cur = await conn.execute(
                "SELECT name FROM workflows WHERE tenant_id = %s ORDER BY name", (tenant,)
            )
            names = [r[0] for r in await cur.fetchall()]
        try:
            body["ready"] = await anyio.to_thread.run_sync(declarer.ready_counts, names)
        except (pika.exceptions.AMQPError, BrokerUnavailableError):
            body["ready"] = None  # the broker is away: the rest still stands
        return JSONResponse(body)

    async def get_workflow(request: Request, tenant: str) -> Response:
        """
        summary: A workflow's newest version
        responses:
          200: {description: the workflow}
          404: {description: unknown workflow}
        """
        name = request.path_params["name"]
        async with pool.connection() as conn:
            wv = await store.find_version(conn, tenant, name, request.query_params.get("version"))
        return JSONResponse(
            {"name": name, "version": wv.version, **wv.definition.model_dump(mode="json")}
        )

    async def trigger_run(request: Request, tenant: str) -> Response:
        """
        summary: Trigger a run of a workflow
        responses:
          201: {description: run created}
          200: {description: the run created earlier with this idempotency key}
          404: {description: unknown workflow}
          422: {description: input rejected by the workflow's input model}
        """
        name = request.path_params["name"]
        body = await _json_body(request)
        try:
            trigger = TriggerRequest.model_validate(body)
        except ValidationError as exc:
            raise BadRequestError(_validation_message(exc, "invalid trigger request")) from None
        async with pool.connection() as conn:
            wv = await versions.get(conn, tenant, name, trigger.version)
            check_input(wv.definition, trigger.input)
            async with traced_trigger(request, wv.definition.name), conn.transaction():
                result = await store.create_runs(
                    conn,
                    topology,
                    tenant,
                    wv,
                    [store.RunRequest(trigger.input, trigger.idempotency_key, trigger.metadata)],
                )
            # Committed: the run is durable. Publishing is the fast path; the
            # scheduler's sweeper sends anything this process fails to.
            relay.submit(result.outbox_rows)
            counted(wv.definition, result)
            (created,) = result.runs
            if created.summary is None:  # an earlier run with this idempotency key
                run = await store.get_run(conn, tenant, created.run_id)
                return JSONResponse(run, status_code=200)
        return JSONResponse(created.summary, status_code=201)

    async def trigger_runs(request: Request, tenant: str) -> Response:
        """
        summary: Trigger many runs of a workflow in one request and one transaction
        description: >-
          Body {"runs": [{"input": ..., "idempotency_key": ...}, ...], "version": ...},
          at most 1000 runs. Every input is checked first; one bad input rejects the
          whole request (422, naming its index and field) and creates nothing.
        responses:
          201: {description: "each run id, with created false for an earlier idempotent run"}
          404: {description: unknown workflow}
          422: {description: an input rejected by the workflow's input model}
        """
        name = request.path_params["name"]
        body = await _json_body(request)
        try:
            bulk = BulkTriggerRequest.model_validate(body)
        except ValidationError as exc:
            raise BadRequestError(
                _validation_message(exc, "invalid bulk trigger request")
            ) from None
        async with pool.connection() as conn:
            wv = await versions.get(conn, tenant, name, bulk.version)
            for index, item in enumerate(bulk.runs):
                try:
                    check_input(wv.definition, item.input)
                except InvalidInputError as exc:
                    raise InvalidInputError(f"runs[{index}]: {exc}") from None
            async with traced_trigger(request, wv.definition.name), conn.transaction():
                result = await store.create_runs(
                    conn,
                    topology,
                    tenant,
                    wv,
                    [store.RunRequest(i.input, i.idempotency_key, i.metadata) for i in bulk.runs],
                )
        relay.submit(result.outbox_rows)
        counted(wv.definition, result)
        return JSONResponse(
            {"runs": [{"id": c.run_id, "created": c.summary is not None} for c in result.runs]},
            status_code=201,
        )

    async def push(tenant: str, items: list[EventItem], bulk: bool) -> list[dict[str, Any]]:
        """Store pushed events and start the runs their keys trigger, in one transaction;
        an event whose idempotency key was used before (or earlier in ``items``) is the
        existing one, marked ``"existing": True`` in what this returns (not in the api's
        answer), and starts nothing."""

        def label(index: int) -> str:
            return f"events[{index}] ({items[index].key!r})" if bulk else f"event {items[0].key!r}"

        for index, item in enumerate(items):
            try:
                triggers.check_event_key(item.key)
            except ValueError as exc:
                raise BadRequestError(f"events[{index}]: {exc}" if bulk else str(exc)) from None
        async with pool.connection() as conn:
            # A concurrent push with the same idempotency key can win the insert: then
            # this one rolls back and finds that event here on the next pass.
            for _ in range(3):
                keys = [i.idempotency_key for i in items if i.idempotency_key is not None]
                existing = await store.pushed_events_by_idempotency_key(conn, tenant, keys)
                subscribed = await versions.triggered(conn, tenant)
                plans: list[tuple[store.EventRequest, list[store.WorkflowVersion]]] = []
                planned: set[str] = set()  # idempotency keys of the events planned
                for index, item in enumerate(items):
                    ikey = item.idempotency_key
                    if ikey is not None and (ikey in existing or ikey in planned):
                        continue
                    matched = [
                        wv
                        for wv in subscribed
                        if triggers.matches_any(wv.definition.on_events, item.key)
                    ]
                    for wv in matched:
                        try:
                            check_input(wv.definition, item.data)
                        except InvalidInputError as exc:
                            raise InvalidInputError(f"{label(index)}: {exc}") from None
                    if ikey is not None:
                        planned.add(ikey)
                    plans.append((store.EventRequest(item.key, item.data, ikey), matched))
                pushed: store.Pushed | None = None
                if plans:
                    with store.run_spans_end_after():
                        async with conn.transaction():
                            pushed = await store.push_events(conn, topology, tenant, plans)
                            if pushed is None:
                                raise psycopg.Rollback()
                    if pushed is None:
                        continue
                    # Committed: publishing is the fast path; the scheduler's sweeper
                    # sends anything this process fails to.
                    relay.submit(pushed.outbox_rows)
                    metrics.count_rows(pushed.outbox_rows)  # concurrency may cancel runs
                    for event in pushed.events:
                        for started in event["runs"]:
                            api_metrics.RUNS_TRIGGERED.labels(started["workflow"]).inc()
                results: list[dict[str, Any]] = []
                made: dict[str, dict[str, Any]] = {}  # by idempotency key
                fresh = iter(pushed.events if pushed else [])
                for item in items:
                    ikey = item.idempotency_key
                    if ikey is not None and ikey in existing:
                        results.append({**existing[ikey], "existing": True})
                    elif ikey is not None and ikey in made:
                        results.append({**made[ikey], "existing": True})
                    else:
                        event = next(fresh)
                        results.append(event)
                        if ikey is not None:
                            made[ikey] = event
                return results
        raise ConflictError(
            "pushed events kept colliding with concurrent pushes of the same idempotency "
            "keys: try again"
        )

    async def push_event(request: Request, tenant: str) -> Response:
        """
        summary: Push an event; it starts a run of every workflow whose on_events matches
        description: >-
          Body {"key": "task:ready", "data": {...}, "idempotency_key": ...}. Every workflow
          whose newest version has an on_events pattern matching the key ("*" matches any
          run of characters) starts one run, with data as its input. The data is checked
          against each matched workflow's input model first: one rejection stores nothing.
          The event and its runs commit in one transaction. A push matching no workflow
          is stored with no runs.
        responses:
          201: {description: "the event: {id, key, data, idempotency_key, created_at, runs}"}
          200: {description: the event pushed earlier with this idempotency key}
          400: {description: malformed request or event key}
          422: {description: "data rejected by a matched workflow's input model"}
        """
        body = await _json_body(request)
        try:
            item = EventItem.model_validate(body)
        except ValidationError as exc:
            raise BadRequestError(_validation_message(exc, "invalid event")) from None
        (event,) = await push(tenant, [item], bulk=False)
        existed = event.pop("existing", False)
        return JSONResponse(event, status_code=200 if existed else 201)

    async def push_events(request: Request, tenant: str) -> Response:
        """
        summary: Push many events in one request and one transaction
        description: >-
          Body {"events": [{"key": ..., "data": ..., "idempotency_key": ...}, ...]}, at
          most 1000 events. Each starts runs as POST /api/v1/events does. Every event is
          checked first; one rejected key or data rejects the whole request (naming its
          index) and stores nothing. An event whose idempotency key was used before, or
          earlier in the request, is the existing event and starts nothing.
        responses:
          201: {description: "{events: [...]}, in request order"}
          400: {description: malformed request or event key}
          422: {description: "an event's data rejected by a matched workflow's input model"}
        """
        body = await _json_body(request)
        try:
            bulk = BulkEventRequest.model_validate(body)
        except ValidationError as exc:
            raise BadRequestError(_validation_message(exc, "invalid bulk event request")) from None
        pushed = await push(tenant, bulk.events, bulk=True)
        for event in pushed:
            event.pop("existing", None)
        return JSONResponse({"events": pushed}, status_code=201)

    async def list_pushed_events(request: Request, tenant: str) -> Response:
        """
        summary: List pushed events, newest first (filter by key; keyset pagination)
        parameters:
          - {name: key, in: query, description: only events with exactly this key}
          - {name: limit, in: query}
          - {name: cursor, in: query, description: next_cursor of the previous page}
        responses:
          200: {description: "{events: [...], next_cursor}"}
          400: {description: malformed key or cursor}
        """
        q = request.query_params
        limit = _int_param(request, "limit", 50, 1, MAX_PAGE)
        cursor = _decode_cursor(q["cursor"]) if q.get("cursor") else None
        if cursor is not None:
            try:
                uuid.UUID(cursor[1])
            except ValueError:
                raise BadRequestError(f"cursor {q['cursor']!r} is malformed") from None
        key = q.get("key") or None
        if key is not None:
            try:
                triggers.check_event_key(key)
            except ValueError as exc:
                raise BadRequestError(str(exc)) from None
        async with pool.connection() as conn:
            found = await store.list_pushed_events(conn, tenant, key, limit, cursor)
        next_cursor = (
            _encode_cursor(found[-1]["created_at"], found[-1]["id"])
            if len(found) == limit
            else None
        )
        return JSONResponse({"events": found, "next_cursor": next_cursor})

    async def get_pushed_event(request: Request, tenant: str) -> Response:
        """
        summary: A pushed event with the runs it started
        responses:
          200: {description: "{id, key, data, idempotency_key, created_at, runs: [{id, workflow}]}"}
          404: {description: unknown event}
        """
        async with pool.connection() as conn:
            event = await store.get_pushed_event(conn, tenant, request.path_params["event_id"])
        return JSONResponse(event)

    async def get_run(request: Request, tenant: str) -> Response:
        """
        summary: A run with each task's status, attempts, output, error and timings
        parameters:
          - {name: wait, in: query, description: seconds to wait for the run to end (max 60)}
        responses:
          200: {description: the run}
          404: {description: unknown run}
        """
        run_id = request.path_params["run_id"]
        wait = _float_param(request, "wait", 0.0)
        wait = min(max(wait, 0.0), MAX_WAIT_SECONDS)
        if wait <= 0:
            async with pool.connection() as conn:
                return JSONResponse(await store.get_run(conn, tenant, run_id))
        with waiters.watch(run_id) as event:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while True:
                # Clear before reading: a NOTIFY that lands during the read must wake
                # the wait below, not be forgotten.
                event.clear()
                async with pool.connection() as conn:
                    run = await store.get_run(conn, tenant, run_id)
                remaining = deadline - loop.time()
                if RunStatus(run["status"]).is_final or remaining <= 0:
                    return JSONResponse(run)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)

    async def cancel_run(request: Request, tenant: str) -> Response:
        """
        summary: Cancel a run (queued tasks never start, running ones are interrupted)
        responses:
          200: {description: "the run, CANCELLED (or as it was, if it had already ended)"}
          404: {description: unknown run}
        """
        run_id = request.path_params["run_id"]
        async with pool.connection() as conn:
            async with conn.transaction():
                _, rows = await store.cancel_run(conn, topology, tenant, run_id)
            relay.submit(rows)
            metrics.count_rows(rows)  # the runs and attempts it ended
            return JSONResponse(await store.get_run(conn, tenant, run_id))

    async def replay_run(request: Request, tenant: str) -> Response:
        """
        summary: Re-run an ended run's failed and cancelled tasks and their descendants
        responses:
          200: {description: the run, running again}
          404: {description: unknown run}
          409: {description: the run has not ended, or it succeeded}
        """
        run_id = request.path_params["run_id"]
        async with pool.connection() as conn:
            async with conn.transaction():
                rows = await store.replay_run(conn, topology, tenant, run_id)
            relay.submit(rows)
            return JSONResponse(await store.get_run(conn, tenant, run_id))

    async def cancelled_attempts(request: Request, tenant: str) -> Response:
        """
        summary: Task runs whose queued or running attempt was cancelled since a time
        description: Workers ask at start, so that they never start an attempt cancelled
          before they were listening for cancellations.
        parameters:
          - {name: since, in: query, description: unix seconds}
        responses:
          200: {description: "{task_run_ids: [...]}"}
        """
        since = _float_param(request, "since", 0.0)
        async with pool.connection() as conn:
            ids = await store.cancelled_attempts(conn, tenant, since)
        return JSONResponse({"task_run_ids": ids})

    async def list_workers(request: Request, tenant: str) -> Response:
        """
        summary: Worker processes, alive, draining, stopped or dead, from their heartbeats
        description: >-
          One entry per worker process (id name@host:pid): status (alive; draining: asked
          to stop, finishing its running tasks; stopped: exited cleanly; dead: silent past
          the heartbeat timeout without having stopped), version (the application's, as
          its operator set it, or null), sdk_version, workflows, slots, running (slots in
          use), started_at and last_heartbeat_at.
        responses:
          200: {description: "{workers: [{id, name, status, version, sdk_version, ...}]}"}
        """
        async with pool.connection() as conn:
            workers = await store.list_workers(conn, settings.worker_heartbeat_timeout_seconds)
        return JSONResponse({"workers": workers})

    async def stream_token(request: Request) -> Response:
        """
        summary: A short-lived stream token, for EventSource URLs on the gateway
        description: >-
          Browsers' EventSource cannot send an Authorization header. Send the API token
          here, then pass the returned token as ?token= to the gateway. Body (optional):
          {"ttl_seconds": 1..3600}, default 300.
        responses:
          201: {description: "{token, expires_at}"}
          401: {description: missing, invalid or revoked API token}
        """
        with translate_errors():
            principal = await verifier.principal(request.headers.get("authorization"))
        body = await _json_body(request) if await request.body() else {}
        ttl = body.get("ttl_seconds", 300) if isinstance(body, dict) else None
        if isinstance(ttl, bool) or not isinstance(ttl, int | float):
            raise BadRequestError(f"ttl_seconds must be a number of seconds, not {ttl!r}")
        if not 1 <= ttl <= MAX_STREAM_TOKEN_SECONDS:
            raise BadRequestError(
                f"ttl_seconds must be from 1 to {MAX_STREAM_TOKEN_SECONDS}, not {ttl!r}"
            )
        token, expires = mint_stream_token(principal, float(ttl))
        return JSONResponse({"token": token, "expires_at": expires}, status_code=201)

    async def task_logs(request: Request, tenant: str) -> Response:
        """
        summary: A run's log lines, oldest first (paginated by event id)
        parameters:
          - {name: task, in: query, description: only this task's lines}
          - {name: after, in: query, description: next_after of the previous page}
          - {name: limit, in: query}
        responses:
          200: {description: "{logs: [{id, task, attempt, message, at}], next_after}"}
          404: {description: unknown run}
        """
        run_id = request.path_params["run_id"]
        limit = _int_param(request, "limit", 100, 1, MAX_PAGE)
        after = _int_param(request, "after", 0, 0, 2**62)
        async with pool.connection() as conn:
            logs = await store.task_logs(
                conn, tenant, run_id, request.query_params.get("task"), after, limit
            )
        next_after = logs[-1]["id"] if len(logs) == limit else None
        return JSONResponse({"logs": logs, "next_after": next_after})

    async def run_trace(request: Request, tenant: str) -> Response:
        """
        summary: A run's trace, from Roost's own span store (no collector needed)
        description: >-
          Every stored span of the run, in start order: trace_id, span_id,
          parent_span_id, name, service, kind, start and end (unix seconds), status,
          status_message, attributes and events (an exception is an event). Spans
          arrive a fraction of a second after they end.
        responses:
          200: {description: "{run_id, status, trace_id, spans: [...]}"}
          404: {description: unknown run}
        """
        async with pool.connection() as conn:
            body = await store.run_trace(conn, tenant, request.path_params["run_id"])
        return JSONResponse(body)

    async def list_runs(request: Request, tenant: str) -> Response:
        """
        summary: List runs, newest first (filter by workflow, status, creation time and
          metadata; keyset pagination)
        parameters:
          - {name: workflow, in: query}
          - {name: status, in: query}
          - {name: since, in: query, description: "created at or after (ISO 8601 or unix seconds)"}
          - {name: until, in: query, description: "created before (ISO 8601 or unix seconds)"}
          - {name: meta.KEY, in: query, description: "metadata KEY equals the value (repeat
              for more pairs: all must match)"}
          - {name: limit, in: query}
          - {name: cursor, in: query, description: next_cursor of the previous page}
        responses:
          200: {description: a page of runs}
          400: {description: a bad filter, named}
        """
        q = request.query_params
        limit = _int_param(request, "limit", 50, 1, MAX_PAGE)
        cursor = _decode_cursor(q["cursor"]) if q.get("cursor") else None
        wanted = {k.removeprefix("meta."): v for k, v in q.items() if k.startswith("meta.")}
        try:
            wanted = metadata.check(wanted)
        except ValueError as exc:
            raise BadRequestError(str(exc)) from None
        async with pool.connection() as conn:
            runs = await store.list_runs(
                conn,
                tenant,
                q.get("workflow"),
                q.get("status"),
                limit,
                cursor,
                metadata=wanted,
                since=_time_param(request, "since"),
                until=_time_param(request, "until"),
            )
        next_cursor = (
            _encode_cursor(runs[-1]["created_at"], runs[-1]["id"]) if len(runs) == limit else None
        )
        return JSONResponse({"runs": runs, "next_cursor": next_cursor})

    routes: list[BaseRoute] = [
        *ratelimits.routes(pool, topology, relay, authed, _json_body),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", api_metrics.metrics_endpoint, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/api/v1/workflows", authed(register_workflow), methods=["POST"]),
        Route("/api/v1/workflows", authed(list_workflows), methods=["GET"]),
        Route("/api/v1/workflows/{name}", authed(get_workflow), methods=["GET"]),
        Route("/api/v1/workflows/{name}/stats", authed(workflow_stats), methods=["GET"]),
        Route("/api/v1/workflows/{name}/runs", authed(trigger_run), methods=["POST"]),
        Route("/api/v1/workflows/{name}/runs/bulk", authed(trigger_runs), methods=["POST"]),
        Route("/api/v1/runs", authed(list_runs), methods=["GET"]),
        Route("/api/v1/activity", authed(activity), methods=["GET"]),
        Route("/api/v1/workers", authed(list_workers), methods=["GET"]),
        Route("/api/v1/cancelled-attempts", authed(cancelled_attempts), methods=["GET"]),
        Route("/api/v1/runs/{run_id}", authed(get_run), methods=["GET"]),
        Route("/api/v1/runs/{run_id}/cancel", authed(cancel_run), methods=["POST"]),
        Route("/api/v1/runs/{run_id}/replay", authed(replay_run), methods=["POST"]),
        Route("/api/v1/runs/{run_id}/logs", authed(task_logs), methods=["GET"]),
        Route("/api/v1/runs/{run_id}/trace", authed(run_trace), methods=["GET"]),
        Route("/api/v1/stream-tokens", stream_token, methods=["POST"]),
        Route("/api/v1/events", authed(push_event), methods=["POST"]),
        Route("/api/v1/events/bulk", authed(push_events), methods=["POST"]),
        Route("/api/v1/pushed-events", authed(list_pushed_events), methods=["GET"]),
        Route("/api/v1/pushed-events/{event_id}", authed(get_pushed_event), methods=["GET"]),
    ]
    schemas = SchemaGenerator(
        {
            "openapi": "3.0.3",
            "info": {"title": "Roost API", "version": "1"},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        }
    )

    async def openapi(request: Request) -> Response:
        return JSONResponse(schemas.get_schema(routes=routes))

    routes.append(Route("/api/v1/openapi.json", openapi, methods=["GET"], include_in_schema=False))

    async def roost_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RoostError)
        return JSONResponse(
            {"error": {"code": exc.code, "message": str(exc)}}, status_code=exc.http_status
        )

    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={RoostError: roost_error})


def _float_param(request: Request, name: str, default: float) -> float:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequestError(f"query parameter {name}={raw!r} is not a number") from None
    if math.isnan(value):
        raise BadRequestError(f"query parameter {name}={raw!r} is not a number")
    return value


def _time_param(request: Request, name: str) -> datetime | None:
    """A time in a query parameter: ISO 8601 (a time without a zone is UTC) or unix
    seconds."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequestError(
            f"query parameter {name}={raw!r} is not a time (ISO 8601 or unix seconds)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"query parameter {name}={raw!r} is not a whole number") from None
    return min(max(value, low), high)


def broker_unavailable(exc: BaseException) -> RoostError:
    if isinstance(exc, RoostError):
        return exc
    return BrokerUnavailableError(f"RabbitMQ is unavailable: {type(exc).__name__} {exc}")
