"""Pushed events: push one or many (they start the runs whose triggers match), and read
them back."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import metrics as api_metrics
from roost_api import store
from roost_api.http import check_input, decode_cursor, encode_cursor, parsed_body, query_of
from roost_api.openapi import operation
from roost_api.params import PushedEventQuery
from roost_api.resources import Resources, resources
from roost_core import metrics, triggers
from roost_core.api_models import BulkEventRequest, EventItem, PushedEvent
from roost_core.api_shapes import PushedEventPage, PushedEvents
from roost_core.authentication import tenant_of
from roost_core.errors import (
    BadRequestError,
    ConflictError,
    InvalidInputError,
)


async def push(
    r: Resources, tenant: str, items: list[EventItem], bulk: bool
) -> list[dict[str, Any]]:
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
    async with r.pool.connection() as conn:
        # A concurrent push with the same idempotency key can win the insert: then
        # this one rolls back and finds that event here on the next pass.
        for _ in range(3):
            keys = [i.idempotency_key for i in items if i.idempotency_key is not None]
            existing = await store.pushed_events_by_idempotency_key(conn, tenant, keys)
            subscribed = await r.versions.triggered(conn, tenant)
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
                        pushed = await store.push_events(conn, r.topology, tenant, plans)
                        if pushed is None:
                            raise psycopg.Rollback()
                if pushed is None:
                    continue
                # Committed: publishing is the fast path; the scheduler's sweeper
                # sends anything this process fails to.
                r.relay.submit(pushed.outbox_rows)
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


@operation(
    "Push an event; it starts a run of every workflow whose on_events matches",
    tag="events",
    description=(
        "Every workflow whose newest version has an on_events pattern matching the key "
        "(* matches any run of characters) starts one run, with data as its input. The "
        "data is checked against each matched workflow's input model first: one rejection "
        "stores nothing. The event and its runs commit in one transaction. A push "
        "matching no workflow is stored with no runs."
    ),
    body=EventItem,
    ok={
        200: ("the event pushed earlier with this idempotency key", PushedEvent),
        201: ("the event, with the runs it started", PushedEvent),
    },
    errors={422: "the data is rejected by a matched workflow's input model"},
)
async def push_event(request: Request) -> Response:
    tenant = tenant_of(request)
    item = await parsed_body(request, EventItem, "invalid event")
    (event,) = await push(resources(request), tenant, [item], bulk=False)
    existed = event.pop("existing", False)
    return JSONResponse(event, status_code=200 if existed else 201)


@operation(
    "Push many events in one request and one transaction",
    tag="events",
    description=(
        "At most 1000 events. Each starts runs as POST /api/v1/events does. Every event is "
        "checked first; one rejected key or data rejects the whole request (naming its "
        "index) and stores nothing. An event whose idempotency key was used before, or "
        "earlier in the request, is the existing event and starts nothing."
    ),
    body=BulkEventRequest,
    ok={201: ("the events, in request order", PushedEvents)},
    errors={422: "an event's data is rejected by a matched workflow's input model"},
)
async def push_events(request: Request) -> Response:
    tenant = tenant_of(request)
    bulk = await parsed_body(request, BulkEventRequest, "invalid bulk event request")
    pushed = await push(resources(request), tenant, bulk.events, bulk=True)
    for event in pushed:
        event.pop("existing", None)
    return JSONResponse({"events": pushed}, status_code=201)


@operation(
    "List pushed events, newest first (by key; keyset pagination)",
    tag="events",
    query=PushedEventQuery,
    ok={200: ("a page of events", PushedEventPage)},
)
async def list_pushed_events(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    q = query_of(request, PushedEventQuery)
    limit = q.limit
    cursor = decode_cursor(q.cursor) if q.cursor else None
    if cursor is not None:
        try:
            uuid.UUID(cursor[1])
        except ValueError:
            raise BadRequestError(f"cursor {q.cursor!r} is malformed") from None
    key = q.key
    if key is not None:
        try:
            triggers.check_event_key(key)
        except ValueError as exc:
            raise BadRequestError(str(exc)) from None
    async with r.pool.connection() as conn:
        found = await store.list_pushed_events(conn, tenant, key, limit, cursor)
    next_cursor = (
        encode_cursor(found[-1]["created_at"], found[-1]["id"]) if len(found) == limit else None
    )
    return JSONResponse({"events": found, "next_cursor": next_cursor})


@operation(
    "A pushed event with the runs it started",
    tag="events",
    ok={200: ("the event", PushedEvent)},
    errors={404: "unknown event"},
)
async def get_pushed_event(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    async with r.pool.connection() as conn:
        event = await store.get_pushed_event(conn, tenant, request.path_params["event_id"])
    return JSONResponse(event)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/events", push_event, methods=["POST"]),
    Route("/api/v1/events/bulk", push_events, methods=["POST"]),
    Route("/api/v1/pushed-events", list_pushed_events, methods=["GET"]),
    Route("/api/v1/pushed-events/{event_id}", get_pushed_event, methods=["GET"]),
]
