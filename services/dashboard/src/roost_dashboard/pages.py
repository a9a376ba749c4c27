"""The dashboard's pages: runs (filtered, keyset-paginated), a run, workflows, activity,
workers and rate limits, each read through the api with the session's token (schedules
are ``roost_dashboard.schedules``, approvals ``roost_dashboard.approvals``, a run's
parent and children ``roost_dashboard.children``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from roost_core import metadata
from roost_core.statuses import RunStatus, WorkerStatus
from roost_dashboard import approvals, children
from roost_dashboard.api import ApiError
from roost_dashboard.schedules import workflow_crons
from roost_dashboard.site import call, render, stream_token

PAGE = 50
WINDOWS = {"1": "last hour", "24": "last 24 hours", "168": "last 7 days", "720": "last 30 days"}


async def runs(request: Request) -> Response:
    q = request.query_params
    run_id = q.get("run_id", "").strip()
    if run_id:
        return RedirectResponse(f"/runs/{run_id}", status_code=303)
    filters = {
        k: q.get(k, "").strip() for k in ("workflow", "status", "since", "until", "meta", "parent")
    }
    params: dict[str, Any] = {"limit": PAGE}
    for key in ("workflow", "status", "since", "until", "cursor"):
        if q.get(key):
            params[key] = q[key]
    if filters["parent"]:  # a run's children (issue #18)
        params["parent_run_id"] = filters["parent"]
    if filters["meta"]:
        try:
            pairs = metadata.parse_pairs(filters["meta"].split())
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        params.update({f"meta.{k}": v for k, v in pairs.items()})
    body = await call(request, "GET", "/api/v1/runs", params=params)
    next_link = None
    if body["next_cursor"]:
        next_link = "/runs?" + urlencode(
            {**{k: v for k, v in filters.items() if v}, "cursor": body["next_cursor"]}
        )
    # New runs appear live on the first page when only the workflow filter is set
    # (the events do not say enough to match the others).
    live_inserts = not q.get("cursor") and not any(
        filters[k] for k in ("status", "since", "until", "meta", "parent")
    )
    return render(
        request,
        "runs.html",
        {
            "runs": body["runs"],
            "filters": filters,
            "statuses": list(RunStatus.__members__),
            "next_link": next_link,
            "stream_token": await stream_token(request),
            "live_inserts": live_inserts,
        },
    )


async def run_spans(request: Request) -> Response:
    """The run's stored spans, for the page's timeline to catch up once the run
    ended (its last spans are stored a fraction of a second after its end)."""
    body = await call(request, "GET", f"/api/v1/runs/{request.path_params['run_id']}/trace")
    return JSONResponse(body["spans"], headers={"Cache-Control": "no-store"})


async def run_row(request: Request) -> Response:
    """One run's row of the runs table (the live table fetches new runs' rows)."""
    found = await call(request, "GET", f"/api/v1/runs/{request.path_params['run_id']}")
    return render(request, "run_row.html", {"r": found})


async def run(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    found = await call(request, "GET", f"/api/v1/runs/{run_id}")
    # The log lines so far (newer ones stream in); at most the last page's worth.
    logs = await call(request, "GET", f"/api/v1/runs/{run_id}/logs", params={"limit": 500})
    # The timeline: the run's stored spans where tracing keeps them (else the page
    # draws its tasks' attempts).
    trace = await call(request, "GET", f"/api/v1/runs/{run_id}/trace")
    # Its children: the first ones listed, and kept current by the script from their own
    # data; not all of them in the page's copy of the run.
    family = children.family(found)
    found.pop("children", None)
    # Its approvals: a pending one is a gate to decide here; a decision is a log line.
    asked = await approvals.of_run(request, run_id)
    lines = sorted(logs["logs"] + approvals.decision_lines(asked), key=lambda line: line["at"])
    return render(
        request,
        "run.html",
        {
            "run": found,
            "logs": lines,
            "approvals": asked,
            "notice": request.query_params.get("notice"),
            "message": request.query_params.get("message"),
            "spans": trace["spans"],
            "family": family,
            "can_cancel": found["status"] in ("QUEUED", "RUNNING"),
            "can_replay": found["status"] in ("FAILED", "CANCELLED"),
            "stream_token": await stream_token(request),
        },
    )


async def workflows(request: Request) -> Response:
    body = await call(request, "GET", "/api/v1/workflows")
    return render(request, "workflows.html", {"workflows": body["workflows"]})


async def workflow_page(
    request: Request,
    form_input: str = "{}",
    form_meta: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    name = request.path_params["name"]
    hours = request.query_params.get("hours", "24")
    if hours not in WINDOWS:
        hours = "24"
    definition = await call(request, "GET", f"/api/v1/workflows/{name}")
    stats = await call(request, "GET", f"/api/v1/workflows/{name}/stats", params={"hours": hours})
    listed = await call(request, "GET", "/api/v1/workflows")
    crons = await workflow_crons(request, name)
    serving = await _serving(request, name)
    versions = next((w["versions"] for w in listed["workflows"] if w["name"] == name), 1)
    graph = {
        "id": "",
        "status": "QUEUED",
        "tasks": [
            {"name": t["name"], "parents": t.get("parents", []), "status": "PENDING"}
            for t in definition["tasks"]
        ],
    }
    return render(
        request,
        "workflow.html",
        {
            "wf": definition,
            "stats": stats,
            "hours": hours,
            "windows": WINDOWS,
            "versions": versions,
            "graph": graph,
            "crons": crons,
            "serving": serving,
            "form_input": form_input,
            "form_meta": form_meta,
            "error": error,
        },
        status_code,
    )


async def _serving(request: Request, name: str) -> int:
    """Live worker processes serving workflow ``name``: with none, its runs queue until
    one starts (issue #20), which the page says plainly."""
    body = await call(request, "GET", "/api/v1/workers")
    return sum(
        1
        for w in body["workers"]
        if w["status"] == WorkerStatus.ALIVE and name in (w["workflows"] or [])
    )


async def workflow(request: Request) -> Response:
    return await workflow_page(request)


async def activity_page(request: Request) -> Response:
    minutes = request.query_params.get("minutes", "60")
    if minutes not in ("15", "60", "360", "1440"):
        minutes = "60"
    body = await call(request, "GET", "/api/v1/activity", params={"minutes": minutes})
    return render(request, "activity.html", {"activity": body, "minutes": minutes})


async def activity_data(request: Request) -> Response:
    """The charts' data, for the page to refresh itself (same origin, session cookie)."""
    minutes = request.query_params.get("minutes", "60")
    body = await call(request, "GET", "/api/v1/activity", params={"minutes": minutes})
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def workers(request: Request) -> Response:
    body = await call(request, "GET", "/api/v1/workers")
    return render(request, "workers.html", {"workers": body["workers"]})


async def rate_limits(request: Request) -> Response:
    body = await call(request, "GET", "/api/v1/rate-limits")
    return render(
        request,
        "rate_limits.html",
        {"limits": body["rate_limits"], "message": request.query_params.get("message")},
    )
