"""Schedules (issue #19): crons (``/api/v1/crons``) and scheduled runs
(``/api/v1/scheduled``). The scheduler fires them; here they are made and managed."""

from __future__ import annotations

import uuid
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import store
from roost_api.http import (
    MAX_PAGE,
    check_input,
    decode_cursor,
    encode_cursor,
    int_param,
    parsed_body,
)
from roost_api.resources import resources
from roost_api.store import schedules
from roost_core import crons
from roost_core.authentication import tenant_of
from roost_core.engine import concurrency
from roost_core.errors import BadRequestError
from roost_core.schedule_models import CronCreate, Reschedule, ScheduleCreate
from roost_core.wire import WorkflowDefinition

_STATUSES = ("SCHEDULED", "FIRED", "CANCELLED", "FAILED")


async def create_cron(request: Request) -> Response:
    """
    summary: Create a cron that starts a workflow at every fire time
    description: >-
      Body {"workflow", "name", "expression", "timezone": "UTC", "input": {},
      "metadata": {}, "catch_up": "latest", "paused": false}. The expression has five
      fields (minute hour day-of-month month day-of-week), an @hourly-style alias, or six
      with a seconds field first. The time zone is an IANA name; DST follows Vixie cron.
      catch_up says what fires for times missed while every scheduler was down:
      "latest" (one run), "all" (one per time, at most 100) or "none". Each (cron, fire
      time) starts exactly one run, of the workflow's newest version, whose metadata
      carries roost.cron, roost.cron_id and roost.fire_at.
    responses:
      201: {description: the cron, with its next fire time}
      400: {description: bad expression, time zone or catch_up (named)}
      404: {description: unknown workflow}
      409: {description: the workflow has a cron of that name}
      422: {description: input rejected by the workflow's input model}
    """
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


async def list_crons(request: Request) -> Response:
    """
    summary: List crons (of one workflow, if given), oldest first
    parameters:
      - {name: workflow, in: query}
      - {name: limit, in: query}
      - {name: cursor, in: query, description: next_cursor of the previous page}
    responses:
      200: {description: "{crons: [...], next_cursor}"}
    """
    tenant = tenant_of(request)
    r = resources(request)
    limit = int_param(request, "limit", 100, 1, MAX_PAGE)
    after = _cursor(request)
    async with r.pool.connection() as conn:
        found = await schedules.list_crons(
            conn, tenant, request.query_params.get("workflow") or None, limit, after
        )
    return JSONResponse({"crons": found, "next_cursor": _next(found, limit, "created_at")})


async def get_cron(request: Request) -> Response:
    """
    summary: A cron, with the latest runs it started
    responses:
      200: {description: "the cron with recent_runs: [{fire_at, run_id, status}]"}
      404: {description: unknown cron}
    """
    tenant = tenant_of(request)
    async with resources(request).pool.connection() as conn:
        cron = await schedules.get_cron(conn, tenant, request.path_params["cron_id"])
    return JSONResponse(cron)


async def pause_cron(request: Request) -> Response:
    """
    summary: Pause a cron (its fire times pass without runs)
    responses:
      200: {description: the cron}
      404: {description: unknown cron}
    """
    return await _set_paused(request, True)


async def resume_cron(request: Request) -> Response:
    """
    summary: Resume a paused cron from its next fire time after now
    responses:
      200: {description: the cron}
      404: {description: unknown cron}
    """
    return await _set_paused(request, False)


async def _set_paused(request: Request, paused: bool) -> Response:
    tenant = tenant_of(request)
    async with resources(request).pool.connection() as conn, conn.transaction():
        cron = await schedules.set_paused(conn, tenant, request.path_params["cron_id"], paused)
    return JSONResponse(cron)


async def delete_cron(request: Request) -> Response:
    """
    summary: Delete a cron made at run time (its runs stay)
    responses:
      204: {description: deleted}
      404: {description: unknown cron}
      409: {description: the cron is declared by its workflow's on_crons}
    """
    tenant = tenant_of(request)
    async with resources(request).pool.connection() as conn, conn.transaction():
        await schedules.delete_cron(conn, tenant, request.path_params["cron_id"])
    return Response(status_code=204)


async def create_scheduled(request: Request) -> Response:
    """
    summary: Schedule a run of a workflow, once, at a time or after a delay
    description: >-
      Body {"workflow", "at": ISO 8601 with a zone | "delay_seconds", "input",
      "metadata"}. At its time the scheduler starts exactly one run, of the workflow's
      newest version, with metadata roost.scheduled_id; a time that passed while every
      scheduler was down fires once on recovery.
    responses:
      201: {description: the scheduled run}
      400: {description: malformed body, or both or neither of at and delay_seconds}
      404: {description: unknown workflow}
      422: {description: input rejected by the workflow's input model}
    """
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


async def list_scheduled(request: Request) -> Response:
    """
    summary: List scheduled runs, soonest first (by workflow, by status)
    parameters:
      - {name: workflow, in: query}
      - {name: status, in: query, description: "SCHEDULED, FIRED, CANCELLED or FAILED"}
      - {name: limit, in: query}
      - {name: cursor, in: query, description: next_cursor of the previous page}
    responses:
      200: {description: "{scheduled: [...], next_cursor}"}
      400: {description: unknown status, or a malformed cursor}
    """
    tenant = tenant_of(request)
    q = request.query_params
    status = (q.get("status") or "").upper() or None
    if status is not None and status not in _STATUSES:
        raise BadRequestError(f"status {q.get('status')!r} must be one of {', '.join(_STATUSES)}")
    limit = int_param(request, "limit", 100, 1, MAX_PAGE)
    after = _cursor(request)
    async with resources(request).pool.connection() as conn:
        found = await schedules.list_scheduled(
            conn, tenant, q.get("workflow") or None, status, limit, after
        )
    return JSONResponse({"scheduled": found, "next_cursor": _next(found, limit, "trigger_at")})


async def get_scheduled(request: Request) -> Response:
    """
    summary: A scheduled run (with run_id once it has fired)
    responses:
      200: {description: the scheduled run}
      404: {description: unknown scheduled run}
    """
    tenant = tenant_of(request)
    async with resources(request).pool.connection() as conn:
        found = await schedules.get_scheduled(conn, tenant, request.path_params["scheduled_id"])
    return JSONResponse(found)


async def reschedule(request: Request) -> Response:
    """
    summary: Move a scheduled run that has not fired to another time
    description: >-
      Body {"at": ISO 8601 with a zone} or {"delay_seconds": from now}.
    responses:
      200: {description: the scheduled run}
      404: {description: unknown scheduled run}
      409: {description: it fired already (naming its run) or was cancelled}
    """
    tenant = tenant_of(request)
    body = await parsed_body(request, Reschedule, "invalid reschedule")
    async with resources(request).pool.connection() as conn, conn.transaction():
        found = await schedules.reschedule(
            conn, tenant, request.path_params["scheduled_id"], body.at, body.delay_seconds
        )
    return JSONResponse(found)


async def cancel_scheduled(request: Request) -> Response:
    """
    summary: Cancel a scheduled run that has not fired
    responses:
      200: {description: "the scheduled run, status CANCELLED"}
      404: {description: unknown scheduled run}
      409: {description: it fired already (naming its run) or was cancelled}
    """
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


def _cursor(request: Request) -> tuple[datetime, str] | None:
    raw = request.query_params.get("cursor")
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
    Route("/api/v1/crons", create_cron, methods=["POST"]),
    Route("/api/v1/crons", list_crons, methods=["GET"]),
    Route("/api/v1/crons/{cron_id}", get_cron, methods=["GET"]),
    Route("/api/v1/crons/{cron_id}", delete_cron, methods=["DELETE"]),
    Route("/api/v1/crons/{cron_id}/pause", pause_cron, methods=["POST"]),
    Route("/api/v1/crons/{cron_id}/resume", resume_cron, methods=["POST"]),
    Route("/api/v1/scheduled", create_scheduled, methods=["POST"]),
    Route("/api/v1/scheduled", list_scheduled, methods=["GET"]),
    Route("/api/v1/scheduled/{scheduled_id}", get_scheduled, methods=["GET"]),
    Route("/api/v1/scheduled/{scheduled_id}", reschedule, methods=["PATCH"]),
    Route("/api/v1/scheduled/{scheduled_id}", cancel_scheduled, methods=["DELETE"]),
]
