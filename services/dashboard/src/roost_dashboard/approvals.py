"""Approvals (issue #18, ``ctx.wait_for_approval``): the Approvals page (pending ones
first, each with Approve and Reject and an optional reason; below, recent decided ones),
the decision itself, and what a run's page shows of its approvals (the pending gate, the
decisions made). A decision is CSRF-checked (``roost_dashboard.security``) and made by
the api's own call, with the session's token, whose name the api records as who decided;
what the api refuses (decided already, expired, its task no longer waiting: 409) comes
back as a message on the page the form was on."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from roost_dashboard.api import ApiError
from roost_dashboard.security import csrf_ok
from roost_dashboard.site import call, render, token_of

Endpoint = Callable[[Request], Awaitable[Response]]

PAGE = 50
VERBS = ("approve", "reject")
# What the api may refuse a decision with that the user can do something about: shown
# as a message on the page the form was on (anything else is the error page).
SHOWN = (400, 404, 409, 422)


async def approvals_page(request: Request) -> Response:
    """Pending approvals, then the latest decided ones, each newest first (as the api
    lists them) and paginated on its own."""
    q = request.query_params
    pending_params: dict[str, Any] = {"status": "PENDING", "limit": PAGE}
    if q.get("pending_cursor"):
        pending_params["cursor"] = q["pending_cursor"]
    pending = await call(request, "GET", "/api/v1/approvals", params=pending_params)
    # Those that ended (approved, rejected, expired), newest asked first.
    recent_params: dict[str, Any] = {"decided": "true", "limit": PAGE}
    if q.get("decided_cursor"):
        recent_params["cursor"] = q["decided_cursor"]
    recent = await call(request, "GET", "/api/v1/approvals", params=recent_params)
    more_pending = more_decided = None
    if pending["next_cursor"]:
        more_pending = "/approvals?" + urlencode({"pending_cursor": pending["next_cursor"]})
    if recent["next_cursor"]:
        more_decided = "/approvals?" + urlencode({"decided_cursor": recent["next_cursor"]})
    return render(
        request,
        "approvals.html",
        {
            "pending": pending["approvals"],
            "decided": recent["approvals"],
            "more_pending": more_pending,
            "more_decided": more_decided,
            "notice": q.get("notice"),
            "message": q.get("message"),
        },
    )


def decide(verb: str) -> Endpoint:
    """POST /approvals/{id}/approve or /reject (form: ``csrf``, ``reason``, ``back``):
    the api's decision, then back to where the form was, the run's page (``back=run``)
    or the Approvals page, with the outcome or the api's reason for refusing it. Only
    those two places: never a URL taken from the form."""
    assert verb in VERBS

    async def act(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(token_of(request), str(form.get("csrf") or "")):
            return render(request, "error.html", {"message": "Refused: bad CSRF token."}, 403)
        approval_id = request.path_params["approval_id"]
        reason = str(form.get("reason") or "").strip() or None
        if not _is_uuid(approval_id):
            return _back("/approvals", message=f"approval {approval_id!r} not found")
        try:
            # Which run it is of (the way back) and what it asks (the outcome says).
            approval = await call(request, "GET", f"/api/v1/approvals/{approval_id}")
        except ApiError as exc:
            if exc.status not in SHOWN:
                raise
            return _back("/approvals", message=str(exc))
        target = "/approvals"
        if form.get("back") == "run":
            target = f"/runs/{approval['run_id']}"
        try:
            await call(
                request,
                "POST",
                f"/api/v1/approvals/{approval_id}/{verb}",
                json={"reason": reason},
            )
        except ApiError as exc:
            if exc.status not in SHOWN:
                raise
            return _back(target, message=str(exc))
        done = "Approved" if verb == "approve" else "Rejected"
        notice = (
            f"{done} \u201c{approval['question']}\u201d ({approval['workflow']}, task "
            f"{approval['task']})"
            + (f" with reason: {reason}" if reason else "")
            + ". The task resumes with the decision."
        )
        return _back(target, notice=notice)

    act.__name__ = f"{verb}_approval"
    return act


async def of_run(request: Request, run_id: str) -> list[dict[str, Any]]:
    """A run's approvals, newest first: its pending gates and the decisions made (none
    from an api that has no approvals yet, as while a deployment rolls out)."""
    try:
        body = await call(
            request, "GET", "/api/v1/approvals", params={"run_id": run_id, "limit": PAGE}
        )
    except ApiError as exc:
        if exc.status != 404:
            raise
        return []
    found: list[dict[str, Any]] = body["approvals"]
    return found


def decision_lines(approvals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The decisions among a run's approvals as lines of its log, where the page's
    script adds them live on their ``task.approval`` events (``decisionLine``)."""
    lines = []
    for a in approvals:
        if a["status"] not in ("APPROVED", "REJECTED", "EXPIRED") or not a["decided_at"]:
            continue
        if a["status"] == "EXPIRED":  # as the script's decisionLine says it live
            message = "approval expired with no decision"
        else:
            message = f"{a['status'].lower()} by {a['decided_by']}"
        lines.append(
            {
                "task": a["task"],
                "decision": True,
                "message": message + (f": {a['reason']}" if a.get("reason") else ""),
                "at": datetime.fromisoformat(a["decided_at"]).timestamp(),
            }
        )
    return lines


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _back(target: str, **query: str) -> Response:
    return RedirectResponse(f"{target}?{urlencode(query)}", status_code=303)
