"""What the dashboard's forms and scripts do: sign in and out, cancel or replay a run,
trigger a run, change a rate limit, renew a stream token. Every change is CSRF-checked
(``roost_dashboard.security``) and made by the api's own call."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from roost_core import metadata
from roost_core.errors import AuthenticationError
from roost_dashboard.api import ApiError
from roost_dashboard.pages import workflow_page
from roost_dashboard.security import SESSION_COOKIE, csrf_ok
from roost_dashboard.site import call, render, site, stream_token, to_sign_in, token_of

Endpoint = Callable[[Request], Awaitable[Response]]


async def sign_in_page(request: Request) -> Response:
    return render(request, "sign_in.html", {"message": request.query_params.get("message")})


async def sign_in(request: Request) -> Response:
    form = await request.form()
    token = str(form.get("token") or "").strip()
    if not token:
        return render(request, "sign_in.html", {"message": "Enter an API token."}, 400)
    try:
        await site(request).api.request(token, "GET", "/api/v1/workflows")
    except AuthenticationError as exc:
        return render(request, "sign_in.html", {"message": f"Refused: {exc}"}, 401)
    except ApiError as exc:
        return render(request, "sign_in.html", {"message": f"Refused: {exc}"}, 503)
    response = RedirectResponse("/runs", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=site(request).settings.secure_cookies,
        path="/",
    )
    return response


async def sign_out(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request.cookies.get(SESSION_COOKIE), str(form.get("csrf") or "")):
        return render(request, "error.html", {"message": "Refused: bad CSRF token."}, 403)
    return to_sign_in("Signed out.")


async def renew_stream_token(request: Request) -> Response:
    """A fresh stream token for a page whose event stream the gateway no longer
    accepts (its token expired while the page stayed open, and the gateway
    restarted). A script's call, so the CSRF token comes in a header."""
    if not csrf_ok(token_of(request), request.headers.get("x-csrf-token", "")):
        return JSONResponse({"error": "bad CSRF token"}, status_code=403)
    return JSONResponse(
        {"token": await stream_token(request)}, headers={"Cache-Control": "no-store"}
    )


def action(verb: str) -> Endpoint:
    """POST /runs/{id}/cancel or /replay: CSRF-checked, then the api's own call;
    back to the run's page, which shows the outcome."""

    async def act(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(token_of(request), str(form.get("csrf") or "")):
            return render(request, "error.html", {"message": "Refused: bad CSRF token."}, 403)
        run_id = request.path_params["run_id"]
        await call(request, "POST", f"/api/v1/runs/{run_id}/{verb}")
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    act.__name__ = f"{verb}_run"
    return act


async def trigger(request: Request) -> Response:
    """The "trigger run" form: the input is checked by the api against the
    workflow's input model; an error comes back inline, with what was typed."""
    form = await request.form()
    if not csrf_ok(token_of(request), str(form.get("csrf") or "")):
        return render(request, "error.html", {"message": "Refused: bad CSRF token."}, 403)
    name = request.path_params["name"]
    raw_input = str(form.get("input") or "{}")
    raw_meta = str(form.get("metadata") or "")
    try:
        payload = json.loads(raw_input)
    except json.JSONDecodeError as exc:
        return await workflow_page(
            request, raw_input, raw_meta, f"The input is not JSON: {exc}", 400
        )
    try:
        pairs = metadata.parse_pairs(raw_meta.split())
    except ValueError as exc:
        return await workflow_page(request, raw_input, raw_meta, str(exc), 400)
    try:
        created = await call(
            request,
            "POST",
            f"/api/v1/workflows/{name}/runs",
            json={"input": payload, "metadata": pairs},
        )
    except ApiError as exc:
        if exc.status in (400, 422):
            return await workflow_page(request, raw_input, raw_meta, str(exc), exc.status)
        raise
    return RedirectResponse(f"/runs/{created['id']}", status_code=303)


async def put_rate_limit(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(token_of(request), str(form.get("csrf") or "")):
        return render(request, "error.html", {"message": "Refused: bad CSRF token."}, 403)
    key = request.path_params["key"]
    raw = str(form.get("limit") or "").strip()
    body: dict[str, Any] = {}
    try:
        body["limit"] = int(raw)
    except ValueError:
        message = f"limit {raw!r} for {key!r} is not a whole number"
        return RedirectResponse("/rate-limits?" + urlencode({"message": message}), 303)
    if form.get("duration"):
        body["duration"] = str(form["duration"])
    try:
        await call(request, "PUT", f"/api/v1/rate-limits/{key}", json=body)
    except ApiError as exc:
        if exc.status in (400, 422):
            return RedirectResponse("/rate-limits?" + urlencode({"message": str(exc)}), 303)
        raise
    return RedirectResponse("/rate-limits", status_code=303)
