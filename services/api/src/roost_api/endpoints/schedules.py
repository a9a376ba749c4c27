"""Schedules (issue #19): crons (``/api/v1/crons``) and scheduled runs
(``/api/v1/scheduled``). The scheduler fires them; here they are made and managed."""

from __future__ import annotations

import uuid
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import store
from roost_api.http import check_input, decode_cursor, encode_cursor, parsed_body, query_of
from roost_api.openapi import operation
from roost_api.params import CronQuery, ScheduledQuery
from roost_api.resources import resources
from roost_api.routing import resource
from roost_api.store import schedules
from roost_core import crons
from roost_core.api_shapes import CronPage, ScheduledPage
from roost_core.authentication import tenant_of
from roost_core.engine import concurrency
from roost_core.errors import BadRequestError
from roost_core.schedule_models import Cron, CronCreate, Reschedule, ScheduleCreate, ScheduledRun
from roost_core.wire import WorkflowDefinition

_UNKNOWN_CRON = {404: "unknown cron"}
_NOT_SCHEDULED = {
    404: "unknown scheduled run",
    409: "it fired already (naming its run) or was cancelled",
}


@operation(
    "Create a cron that starts a workflow at every fire time",
    tag="schedules",
    description=(
        "The expression has five fields (minute hour day-of-month month day-of-week), an "
        "@hourly-style alias, or six with a seconds field first. The time zone is an IANA "
        "name; DST follows Vixie cron. catch_up says what fires for times missed while "
        "every scheduler was down: latest (one run), all (one per time, at most 100) or "
        "none. Each (cron, fire time) starts exactly one run, of the workflow's newest "
        "version, whose metadata carries roost.cron, roost.cron_id and roost.fire_at."
    ),
    body=CronCreate,
    ok={201: ("the cron, with its next fire time", Cron)},
    errors={
        400: "a bad expression, time zone or catch_up (named), or a malformed body",
        404: "unknown workflow",
        409: "the workflow has a cron of that name",
        422: "the input is rejected by the workflow's input model",
    },
)
async def create_cron(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    body = await parsed_body(request, CronCreate, "invalid cron")
    try:
        body = body.model_copy(
            update={
                "expression": crons.check_expression(body.expression),
                "catch_up": crons.check_catch_up(body.catch_up),
            }
        )
        crons.check_timezone(body.timezone)
    except crons.CronExpressionError as exc:
        raise BadRequestError(str(exc)) from None
    async with r.pool.connection() as conn:
        wv = await r.versions.get(conn, tenant, body.workflow, None)
        _check_run_input(wv.definition, body.input)
        async with conn.transaction():
            cron = await schedules.create_cron(conn, tenant, wv.workflow_id, body)
    return JSONResponse(cron, status_code=201)


@operation(
    "List crons (of one workflow, if given), oldest first",
    tag="schedules",
    query=CronQuery,
    ok={200: ("a page of crons", CronPage)},
)
async def list_crons(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    q = query_of(request, CronQuery)
    after = _cursor(q.cursor)
    async with r.pool.connection() as conn:
        found = await schedules.list_crons(conn, tenant, q.workflow, q.limit, after)
    return JSONResponse({"crons": found, "next_cursor": _next(found, q.limit, "created_at")})


@operation(
    "A cron, with the latest runs it started",
    tag="schedules",
    ok={200: ("the cron with its recent_runs, newest first", Cron)},
    errors=_UNKNOWN_CRON,
)
async def get_cron(request: Request) -> Response:
    tenant = tenant_of(request)
    async with resources(request).pool.connection() as conn:
        cron = await schedules.get_cron(conn, tenant, request.path_params["cron_id"])
    return JSONResponse(cron)


@operation(
    "Pause a cron (its fire times pass without runs)",
    tag="schedules",
    ok={200: ("the cron", Cron)},
    errors=_UNKNOWN_CRON,
)
async def pause_cron(request: Request) -> Response:
    return await _set_paused(request, True)


@operation(
    "Resume a paused cron from its next fire time after now",
    tag="schedules",
    ok={200: ("the cron", Cron)},
    errors=_UNKNOWN_CRON,
)
async def resume_cron(request: Request) -> Response:
    return await _set_paused(request, False)


async def _set_paused(request: Request, paused: bool) -> Response:
    tenant = tenant_of(request)
    async with resources(request).pool.connection() as conn, conn.transaction():
        cron = await schedules.set_paused(conn, tenant, request.path_params["cron_id"], paused)
    return JSONResponse(cron)


@operation(
    "Delete a cron made at run time (its runs stay)",
    tag="schedules",
    ok={204: ("deleted", None)},
    errors={**_UNKNOWN_CRON, 409: "the cron is declared by its workflow's on_crons"},
)
async def delete_cron(request: Request) -> Response:
    tenant = tenant_of(request)
    async with resources(request).pool.connection() as conn, conn.transaction():
        await schedules.delete_cron(conn, tenant, request.path_params["cron_id"])
    return Response(status_code=204)


@operation(
    "Schedule a run of a workflow, once, at a time or after a delay",
    tag="schedules",
    description=(
        "Give at (ISO 8601 with a zone) or delay_seconds. At its time the scheduler starts "
        "exactly one run, of the workflow's newest version, with metadata "
        "roost.scheduled_id; a time that passed while every scheduler was down fires once "
        "on recovery."
    ),
    body=ScheduleCreate,
    ok={201: ("the scheduled run", ScheduledRun)},
    errors={
        400: "a malformed body, or both or neither of at and delay_seconds",
        404: "unknown workflow",
        422: "the input is rejected by the workflow's input model",
    },
)
async def create_scheduled(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    body = await parsed_body(request, ScheduleCreate, "invalid scheduled run")
    async with r.pool.connection() as conn:
        wv = await r.versions.get(conn, tenant, body.workflow, None)
        _check_run_input(wv.definition, body.input)
        async with conn.transaction():
            found = await schedules.create_scheduled(
                conn,
                tenant,
                wv.workflow_id,
                body.at,
                body.delay_seconds,
                body.input,
                body.metadata,
            )
    return JSONResponse(found, status_code=201)


@operation(
    "List scheduled runs, soonest first (by workflow, by status)",
    tag="schedules",
    query=ScheduledQuery,
    ok={200: ("a page of scheduled runs", ScheduledPage)},
)
async def list_scheduled(request: Request) -> Response:
    tenant = tenant_of(request)
    q = query_of(request, ScheduledQuery)
    after = _cursor(q.cursor)
    async with resources(request).pool.connection() as conn:
        found = await schedules.list_scheduled(conn, tenant, q.workflow, q.status, q.limit, after)
    return JSONResponse({"scheduled": found, "next_cursor": _next(found, q.limit, "trigger_at")})


@operation(
    "A scheduled run (with run_id once it has fired)",
    tag="schedules",
    ok={200: ("the scheduled run", ScheduledRun)},
    errors={404: "unknown scheduled run"},
)
async def get_scheduled(request: Request) -> Response:
    tenant = tenant_of(request)
    async with resources(request).pool.connection() as conn:
        found = await schedules.get_scheduled(conn, tenant, request.path_params["scheduled_id"])
    return JSONResponse(found)


@operation(
    "Move a scheduled run that has not fired to another time",
    tag="schedules",
    description="Give at (ISO 8601 with a zone) or delay_seconds (from now).",
    body=Reschedule,
    ok={200: ("the scheduled run", ScheduledRun)},
    errors=_NOT_SCHEDULED,
)
async def reschedule(request: Request) -> Response:
    tenant = tenant_of(request)
    body = await parsed_body(request, Reschedule, "invalid reschedule")
    async with resources(request).pool.connection() as conn, conn.transaction():
        found = await schedules.reschedule(
            conn, tenant, request.path_params["scheduled_id"], body.at, body.delay_seconds
        )
    return JSONResponse(found)


@operation(
    "Cancel a scheduled run that has not fired",
    tag="schedules",
    ok={200: ("the scheduled run, CANCELLED", ScheduledRun)},
    errors=_NOT_SCHEDULED,
)
async def cancel_scheduled(request: Request) -> Response:
    tenant = tenant_of(request)
    async with resources(request).pool.connection() as conn, conn.transaction():
        found = await schedules.cancel_scheduled(conn, tenant, request.path_params["scheduled_id"])
    return JSONResponse(found)


def _check_run_input(definition: WorkflowDefinition, run_input: object) -> None:
    """What a trigger of the workflow's newest version would refuse, refused now (at
    fire time the newest version then may still refuse it: the scheduler sets such a
    schedule aside, naming why)."""
    check_input(definition, run_input)
    store.check_dynamic_keys(definition, [run_input])
    concurrency.group_keys(definition, [run_input])


def _cursor(raw: str | None) -> tuple[datetime, str] | None:
    if not raw:
        return None
    at, last_id = decode_cursor(raw)
    try:
        uuid.UUID(last_id)
    except ValueError:
        raise BadRequestError(f"cursor {raw!r} is malformed") from None
    return at, last_id


def _next(found: list[dict[str, object]], limit: int, field: str) -> str | None:
    if len(found) < limit:
        return None
    return encode_cursor(str(found[-1][field]), str(found[-1]["id"]))


ROUTES: list[BaseRoute] = [
    resource("/api/v1/crons", POST=create_cron, GET=list_crons),
    resource("/api/v1/crons/{cron_id}", GET=get_cron, DELETE=delete_cron),
    Route("/api/v1/crons/{cron_id}/pause", pause_cron, methods=["POST"]),
    Route("/api/v1/crons/{cron_id}/resume", resume_cron, methods=["POST"]),
    resource("/api/v1/scheduled", POST=create_scheduled, GET=list_scheduled),
    resource(
        "/api/v1/scheduled/{scheduled_id}",
        GET=get_scheduled,
        PATCH=reschedule,
        DELETE=cancel_scheduled,
    ),
]
