"""The dashboard's pages: sign-in, runs (filtered, keyset-paginated), a run.

Server-rendered with Jinja2 (autoescaped); every read and action goes through the api
with the signed-in user's token. A token the api refuses (wrong, revoked) ends the
session and returns to sign-in with the api's reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from roost_core import metadata
from roost_core.events import ALL_TYPES
from roost_core.statuses import RunStatus
from roost_dashboard import formatting
from roost_dashboard.api import Api, ApiError
from roost_dashboard.security import SESSION_COOKIE, SecurityHeaders, csrf_ok, csrf_token
from roost_dashboard.settings import DashboardSettings

logger = logging.getLogger(__name__)

PAGE = 50
Page = Callable[[Request, str], Awaitable[Response]]

# The front-end files served from the npm packages (`npm ci` in services/dashboard), by
# the name pages use: nothing from a CDN, nothing third-party in the repository.
VENDOR = {
    "dagre.min.js": "@dagrejs/dagre/dist/dagre.min.js",
    "uPlot.iife.min.js": "uplot/dist/uPlot.iife.min.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
}
WINDOWS = {"1": "last hour", "24": "last 24 hours", "168": "last 7 days", "720": "last 30 days"}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def create_app(settings: DashboardSettings) -> Starlette:
    api = Api(settings.api_url)
    here = resources.files("roost_dashboard")
    templates = Jinja2Templates(directory=str(here / "templates"))
    templates.env.filters["duration"] = formatting.duration
    templates.env.filters["trigger"] = formatting.trigger
    templates.env.filters["when"] = formatting.when

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logger.info(
            "dashboard ready",
            extra={"action": "dashboard_started", "port": settings.dashboard_port},
        )
        yield
        await api.close()

    def render(
        request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        session = request.cookies.get(SESSION_COOKIE)
        return templates.TemplateResponse(
            request,
            name,
            {
                "csrf": csrf_token(session) if session else "",
                "signed_in": bool(session),
                "gateway_url": settings.gateway_url.rstrip("/"),
                "event_types": sorted(ALL_TYPES),
                **context,
            },
            status_code=status_code,
        )

    async def stream_token(token: str) -> str:
        """A short-lived token for the browser's EventSource to the gateway (which cannot
        send headers): made for URLs, unlike the API token, which never leaves the
        cookie."""
        body = await api.request(
            token,
            "POST",
            "/api/v1/stream-tokens",
            json={"ttl_seconds": settings.stream_token_seconds},
        )
        return str(body["token"])

    async def renew_stream_token(request: Request, token: str) -> Response:
        """A fresh stream token for a page whose event stream the gateway no longer
        accepts (its token expired while the page stayed open, and the gateway
        restarted). A script's call, so the CSRF token comes in a header."""
        if not csrf_ok(token, request.headers.get("x-csrf-token", "")):
            return JSONResponse({"error": "bad CSRF token"}, status_code=403)
        return JSONResponse(
            {"token": await stream_token(token)}, headers={"Cache-Control": "no-store"}
        )

    async def vendor(request: Request) -> Response:
        name = request.path_params["name"]
        relative = VENDOR.get(name)
        if relative is None:
            return Response("not found", status_code=404)
        path = settings.assets_dir / relative
        if not path.is_file():
            logger.error(
                "front-end package missing: run `npm ci` in services/dashboard (just setup)",
                extra={"action": "asset_missing", "path": str(path)},
            )
            return Response(f"{name} is not installed on this server", status_code=404)
        return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    def to_sign_in(message: str | None = None) -> Response:
        target = "/sign-in" + (f"?{urlencode({'message': message})}" if message else "")
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def signed_in(page: Page) -> Callable[[Request], Awaitable[Response]]:
        """Pages for a signed-in user: no session sends to sign-in; a token the api
        refuses ends the session there, with the api's reason."""

        async def endpoint(request: Request) -> Response:
            token = request.cookies.get(SESSION_COOKIE)
            if not token:
                return to_sign_in()
            try:
                return await page(request, token)
            except ApiError as exc:
                if exc.status == 401:
                    return to_sign_in(f"Signed out: {exc}")
                if exc.status == 404:
                    return render(request, "not_found.html", {"message": str(exc)}, 404)
                if exc.status == 0:
                    return render(request, "error.html", {"message": str(exc)}, 503)
                return render(request, "error.html", {"message": str(exc)}, exc.status)

        endpoint.__name__ = page.__name__
        return endpoint

    async def sign_in_page(request: Request) -> Response:
        return render(request, "sign_in.html", {"message": request.query_params.get("message")})

    async def sign_in(request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token") or "").strip()
        if not token:
            return render(request, "sign_in.html", {"message": "Enter an API token."}, 400)
        try:
            await api.request(token, "GET", "/api/v1/workflows")
        except ApiError as exc:
            status = 401 if exc.status == 401 else 503
            return render(request, "sign_in.html", {"message": f"Refused: {exc}"}, status)
        response = RedirectResponse("/runs", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
            path="/",
        )
        return response

    async def sign_out(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request.cookies.get(SESSION_COOKIE), str(form.get("csrf") or "")):
            return render(request, "error.html", {"message": "Refused: bad CSRF token."}, 403)
        return to_sign_in("Signed out.")

    async def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    async def runs(request: Request, token: str) -> Response:
        q = request.query_params
        run_id = q.get("run_id", "").strip()
        if run_id:
            return RedirectResponse(f"/runs/{run_id}", status_code=303)
        filters = {k: q.get(k, "") for k in ("workflow", "status", "since", "until", "meta")}
        params: dict[str, Any] = {"limit": PAGE}
        for key in ("workflow", "status", "since", "until", "cursor"):
            if q.get(key):
                params[key] = q[key]
        if filters["meta"]:
            try:
                pairs = metadata.parse_pairs(filters["meta"].split())
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None
            params.update({f"meta.{k}": v for k, v in pairs.items()})
        body = await api.request(token, "GET", "/api/v1/runs", params=params)
        next_link = None
        if body["next_cursor"]:
            next_link = "/runs?" + urlencode(
                {**{k: v for k, v in filters.items() if v}, "cursor": body["next_cursor"]}
            )
        # New runs appear live on the first page when only the workflow filter is set
        # (the events do not say enough to match the others).
        live_inserts = not q.get("cursor") and not any(
            filters[k] for k in ("status", "since", "until", "meta")
        )
        return render(
            request,
            "runs.html",
            {
                "runs": body["runs"],
                "filters": filters,
                "statuses": list(RunStatus.__members__),
                "next_link": next_link,
                "stream_token": await stream_token(token),
                "live_inserts": live_inserts,
            },
        )

    async def run_spans(request: Request, token: str) -> Response:
        """The run's stored spans, for the page's timeline to catch up once the run
        ended (its last spans are stored a fraction of a second after its end)."""
        body = await api.request(
            token, "GET", f"/api/v1/runs/{request.path_params['run_id']}/trace"
        )
        return JSONResponse(body["spans"], headers={"Cache-Control": "no-store"})

    async def run_row(request: Request, token: str) -> Response:
        """One run's row of the runs table (the live table fetches new runs' rows)."""
        found = await api.request(token, "GET", f"/api/v1/runs/{request.path_params['run_id']}")
        return render(request, "run_row.html", {"r": found})

    async def run(request: Request, token: str) -> Response:
        run_id = request.path_params["run_id"]
        found = await api.request(token, "GET", f"/api/v1/runs/{run_id}")
        # The log lines so far (newer ones stream in); at most the last page's worth.
        logs = await api.request(token, "GET", f"/api/v1/runs/{run_id}/logs", params={"limit": 500})
        # The timeline: the run's stored spans where tracing keeps them (else the page
        # draws its tasks' attempts).
        trace = await api.request(token, "GET", f"/api/v1/runs/{run_id}/trace")
        return render(
            request,
            "run.html",
            {
                "run": found,
                "logs": logs["logs"],
                "spans": trace["spans"],
                "can_cancel": found["status"] in ("QUEUED", "RUNNING"),
                "can_replay": found["status"] in ("FAILED", "CANCELLED"),
                "stream_token": await stream_token(token),
            },
        )

    def action(verb: str) -> Page:
        """POST /runs/{id}/cancel or /replay: CSRF-checked, then the api's own call;
        back to the run's page, which shows the outcome."""

        async def act(request: Request, token: str) -> Response:
            form = await request.form()
            if not csrf_ok(token, str(form.get("csrf") or "")):
                return render(request, "error.html", {"message": "Refused: bad CSRF token."}, 403)
            run_id = request.path_params["run_id"]
            await api.request(token, "POST", f"/api/v1/runs/{run_id}/{verb}")
            return RedirectResponse(f"/runs/{run_id}", status_code=303)

        act.__name__ = f"{verb}_run"
        return act

    async def workflows(request: Request, token: str) -> Response:
        body = await api.request(token, "GET", "/api/v1/workflows")
        return render(request, "workflows.html", {"workflows": body["workflows"]})

    async def workflow_page(
        request: Request,
        token: str,
        form_input: str = "{}",
        form_meta: str = "",
        error: str | None = None,
        status_code: int = 200,
    ) -> Response:
        name = request.path_params["name"]
        hours = request.query_params.get("hours", "24")
        if hours not in WINDOWS:
            hours = "24"
        definition = await api.request(token, "GET", f"/api/v1/workflows/{name}")
        stats = await api.request(
            token, "GET", f"/api/v1/workflows/{name}/stats", params={"hours": hours}
        )
        listed = await api.request(token, "GET", "/api/v1/workflows")
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
                "form_input": form_input,
                "form_meta": form_meta,
                "error": error,
            },
            status_code,
        )

    async def workflow(request: Request, token: str) -> Response:
        return await workflow_page(request, token)

    async def trigger(request: Request, token: str) -> Response:
        """The "trigger run" form: the input is checked by the api against the
        workflow's input model; an error comes back inline, with what was typed."""
        form = await request.form()
        if not csrf_ok(token, str(form.get("csrf") or "")):
            return render(request, "error.html", {"message": "Refused: bad CSRF token."}, 403)
        name = request.path_params["name"]
        raw_input = str(form.get("input") or "{}")
        raw_meta = str(form.get("metadata") or "")
        try:
            payload = json.loads(raw_input)
        except json.JSONDecodeError as exc:
            return await workflow_page(
                request, token, raw_input, raw_meta, f"The input is not JSON: {exc}", 400
            )
        try:
            pairs = metadata.parse_pairs(raw_meta.split())
        except ValueError as exc:
            return await workflow_page(request, token, raw_input, raw_meta, str(exc), 400)
        try:
            created = await api.request(
                token,
                "POST",
                f"/api/v1/workflows/{name}/runs",
                json={"input": payload, "metadata": pairs},
            )
        except ApiError as exc:
            if exc.status in (400, 422):
                return await workflow_page(
                    request, token, raw_input, raw_meta, str(exc), exc.status
                )
            raise
        return RedirectResponse(f"/runs/{created['id']}", status_code=303)

    async def activity_page(request: Request, token: str) -> Response:
        minutes = request.query_params.get("minutes", "60")
        if minutes not in ("15", "60", "360", "1440"):
            minutes = "60"
        body = await api.request(token, "GET", "/api/v1/activity", params={"minutes": minutes})
        return render(request, "activity.html", {"activity": body, "minutes": minutes})

    async def activity_data(request: Request, token: str) -> Response:
        """The charts' data, for the page to refresh itself (same origin, session cookie)."""
        minutes = request.query_params.get("minutes", "60")
        body = await api.request(token, "GET", "/api/v1/activity", params={"minutes": minutes})
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def workers(request: Request, token: str) -> Response:
        body = await api.request(token, "GET", "/api/v1/workers")
        return render(request, "workers.html", {"workers": body["workers"]})

    async def rate_limits(request: Request, token: str) -> Response:
        body = await api.request(token, "GET", "/api/v1/rate-limits")
        return render(
            request,
            "rate_limits.html",
            {"limits": body["rate_limits"], "message": request.query_params.get("message")},
        )

    async def put_rate_limit(request: Request, token: str) -> Response:
        form = await request.form()
        if not csrf_ok(token, str(form.get("csrf") or "")):
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
            await api.request(token, "PUT", f"/api/v1/rate-limits/{key}", json=body)
        except ApiError as exc:
            if exc.status in (400, 422):
                return RedirectResponse("/rate-limits?" + urlencode({"message": str(exc)}), 303)
            raise
        return RedirectResponse("/rate-limits", status_code=303)

    routes = [
        Route("/", home),
        Route("/sign-in", sign_in_page, methods=["GET"]),
        Route("/sign-in", sign_in, methods=["POST"]),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/runs", signed_in(runs)),
        Route("/runs/{run_id}", signed_in(run)),
        Route("/runs/{run_id}/row", signed_in(run_row)),
        Route("/runs/{run_id}/spans", signed_in(run_spans)),
        Route("/stream-token", signed_in(renew_stream_token), methods=["POST"]),
        Route("/vendor/{name}", vendor),
        Route("/runs/{run_id}/cancel", signed_in(action("cancel")), methods=["POST"]),
        Route("/runs/{run_id}/replay", signed_in(action("replay")), methods=["POST"]),
        Route("/workers", signed_in(workers)),
        Route("/activity", signed_in(activity_page)),
        Route("/activity/data", signed_in(activity_data)),
        Route("/workflows", signed_in(workflows)),
        Route("/workflows/{name}", signed_in(workflow)),
        Route("/workflows/{name}/runs", signed_in(trigger), methods=["POST"]),
        Route("/rate-limits", signed_in(rate_limits)),
        Route("/rate-limits/{key:path}", signed_in(put_rate_limit), methods=["POST"]),
        Route("/health", lambda request: Response("ok")),
        Mount("/static", StaticFiles(directory=str(here / "static")), name="static"),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders, gateway_origin=_origin(settings.gateway_url))],
    )
