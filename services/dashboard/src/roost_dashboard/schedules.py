"""The Schedules page (issue #19): crons and scheduled runs, read through the api with
the session's token, and what can be done to them there: pause, resume or delete a cron,
cancel a scheduled run. Every change is CSRF-checked (``roost_dashboard.security``) and
made by the api's own call, as the run page's cancel and replay are
(``roost_dashboard.actions``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from roost_dashboard.api import ApiError
from roost_dashboard.security import csrf_ok
from roost_dashboard.site import call, render, token_of

Endpoint = Callable[[Request], Awaitable[Response]]

PAGE = 100
# Which scheduled runs the page lists. The api lists them soonest first, so without a
# status the first page would fill up with long-fired ones: the default is those still
# to come, the ones that can be acted on.
STATUSES = {
    "SCHEDULED": "to come",
    "FIRED": "fired",
    "FAILED": "failed to fire",
    "CANCELLED": "cancelled",
    "": "any",
}
CRON_VERBS = ("pause", "resume", "delete")


def _filters(source: Any) -> dict[str, str]:
    """The page's filters from a query string or a form (the actions' forms carry them,
    so that the page they return to lists what it listed)."""
    status = str(source.get("status", "SCHEDULED")).upper()
    return {
        "workflow": str(source.get("workflow") or "").strip(),
        "status": status if status in STATUSES else "SCHEDULED",
    }


def _query(filters: dict[str, str]) -> dict[str, str]:
    """The filters as query parameters: the workflow if any, the status unless it is
    the default ("any" is an empty status, which must survive the round trip)."""
    query = {"workflow": filters["workflow"]} if filters["workflow"] else {}
    if filters["status"] != "SCHEDULED":
        query["status"] = filters["status"]
    return query


def _schedules_url(filters: dict[str, str], message: str | None = None) -> str:
    query = {**_query(filters), **({"message": message} if message else {})}
    return "/schedules" + (f"?{urlencode(query)}" if query else "")


async def schedules_page(request: Request) -> Response:
    q = request.query_params
    filters = _filters(q)
    workflow = filters["workflow"] or None
    cron_params: dict[str, Any] = {"limit": PAGE, "workflow": workflow}
    if q.get("cron_cursor"):
        cron_params["cursor"] = q["cron_cursor"]
    scheduled_params: dict[str, Any] = {
        "limit": PAGE,
        "workflow": workflow,
        "status": filters["status"] or None,
    }
    if q.get("scheduled_cursor"):
        scheduled_params["cursor"] = q["scheduled_cursor"]
    crons = await call(request, "GET", "/api/v1/crons", params=_present(cron_params))
    scheduled = await call(request, "GET", "/api/v1/scheduled", params=_present(scheduled_params))
    more_crons = more_scheduled = None
    if crons["next_cursor"]:
        more_crons = _page_link(filters, "cron_cursor", crons["next_cursor"])
    if scheduled["next_cursor"]:
        more_scheduled = _page_link(filters, "scheduled_cursor", scheduled["next_cursor"])
    return render(
        request,
        "schedules.html",
        {
            "crons": crons["crons"],
            "scheduled": scheduled["scheduled"],
            "filters": filters,
            "statuses": STATUSES,
            "more_crons": more_crons,
            "more_scheduled": more_scheduled,
            "message": q.get("message"),
        },
    )


async def cron_page(request: Request) -> Response:
    """One cron: what it is, and the latest runs it started (the api keeps ten)."""
    found = await call(request, "GET", f"/api/v1/crons/{request.path_params['cron_id']}")
    return render(
        request, "cron.html", {"cron": found, "message": request.query_params.get("message")}
    )


def cron_action(verb: str) -> Endpoint:
    """POST /schedules/crons/{id}/pause, /resume or /delete: CSRF-checked, then the
    api's own call; back to where the button was (the cron's page, or the list). What
    the api refuses (deleting a declared cron: 409; a cron gone meanwhile: 404) comes
    back as a message on that page."""
    assert verb in CRON_VERBS

    async def act(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(token_of(request), str(form.get("csrf") or "")):
            return render(request, "error.html", {"message": "Refused: bad CSRF token."}, 403)
        cron_id = request.path_params["cron_id"]
        filters = _filters(form)
        # Only two places to go back to, chosen here: never a URL taken from the form.
        on_cron_page = form.get("back") == "cron" and verb != "delete"
        try:
            if verb == "delete":
                await call(request, "DELETE", f"/api/v1/crons/{cron_id}")
            else:
                await call(request, "POST", f"/api/v1/crons/{cron_id}/{verb}")
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
            if form.get("back") == "cron" and exc.status == 409:
                return RedirectResponse(_cron_url(cron_id, str(exc)), status_code=303)
            return RedirectResponse(_schedules_url(filters, str(exc)), status_code=303)
        if on_cron_page:
            return RedirectResponse(_cron_url(cron_id), status_code=303)
        return RedirectResponse(_schedules_url(filters), status_code=303)

    act.__name__ = f"{verb}_cron"
    return act


async def cancel_scheduled(request: Request) -> Response:
    """POST /schedules/scheduled/{id}/cancel: a scheduled run that has not fired. One
    that fired meanwhile (or was cancelled) is the api's 409, shown as a message."""
    form = await request.form()
    if not csrf_ok(token_of(request), str(form.get("csrf") or "")):
        return render(request, "error.html", {"message": "Refused: bad CSRF token."}, 403)
    filters = _filters(form)
    try:
        await call(request, "DELETE", f"/api/v1/scheduled/{request.path_params['scheduled_id']}")
    except ApiError as exc:
        if exc.status not in (404, 409):
            raise
        return RedirectResponse(_schedules_url(filters, str(exc)), status_code=303)
    return RedirectResponse(_schedules_url(filters), status_code=303)


async def workflow_crons(request: Request, workflow: str) -> list[dict[str, Any]]:
    """A workflow's crons, declared and made at run time, for its page's triggers."""
    body = await call(request, "GET", "/api/v1/crons", params={"workflow": workflow})
    crons: list[dict[str, Any]] = body["crons"]
    return crons


def _cron_url(cron_id: str, message: str | None = None) -> str:
    return f"/schedules/crons/{cron_id}" + (
        f"?{urlencode({'message': message})}" if message else ""
    )


def _page_link(filters: dict[str, str], key: str, cursor: str) -> str:
    """The next page of one table (the other table starts again from its first page)."""
    return "/schedules?" + urlencode({**_query(filters), key: cursor})


def _present(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}
