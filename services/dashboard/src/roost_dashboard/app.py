"""The dashboard's application: sign-in, pages (``roost_dashboard.pages``), actions
(``roost_dashboard.actions``), schedules (``roost_dashboard.schedules``) and approvals
(``roost_dashboard.approvals``), assembled here with what they share
(``roost_dashboard.site``).

Server-rendered with Jinja2 (autoescaped); every read and action goes through the api
with the signed-in user's token. Every page but sign-in, the probes and the front-end
files needs a session (``roost_core.authentication``): without one it sends to sign-in,
and a token the api refuses (wrong, revoked) ends the session there with the api's
reason.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from importlib import resources
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from roost_core.authentication import Authentication
from roost_dashboard import actions, approvals, children, formatting, pages, schedules
from roost_dashboard.api import Api, ApiError
from roost_dashboard.security import SecurityHeaders
from roost_dashboard.settings import DashboardSettings
from roost_dashboard.site import Site, refuse, render, session, site

logger = logging.getLogger(__name__)

# The front-end files served from the npm packages (`npm ci` in services/dashboard), by
# the name pages use: nothing from a CDN, nothing third-party in the repository.
VENDOR = {
    "dagre.min.js": "@dagrejs/dagre/dist/dagre.min.js",
    "uPlot.iife.min.js": "uplot/dist/uPlot.iife.min.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
}

# What needs no session: sign-in and out, the way there, the probe, the front-end files.
PUBLIC = frozenset({"/", "/sign-in", "/sign-out", "/vendor/{name}", "/health", "/static"})


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def home(request: Request) -> Response:
    return RedirectResponse("/runs", status_code=303)


async def health(request: Request) -> Response:
    return Response("ok")


async def vendor(request: Request) -> Response:
    name = request.path_params["name"]
    relative = VENDOR.get(name)
    if relative is None:
        return Response("not found", status_code=404)
    path = site(request).settings.assets_dir / relative
    if not path.is_file():
        logger.error(
            "front-end package missing: run `npm ci` in services/dashboard (just setup)",
            extra={"action": "asset_missing", "path": str(path)},
        )
        return Response(f"{name} is not installed on this server", status_code=404)
    return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


async def api_error(request: Request, exc: Exception) -> Response:
    """What a page shows when the api refuses one of its calls (or cannot be reached)."""
    assert isinstance(exc, ApiError)
    if exc.status == 404:
        return render(request, "not_found.html", {"message": str(exc)}, 404)
    if exc.status == 0:
        return render(request, "error.html", {"message": str(exc)}, 503)
    return render(request, "error.html", {"message": str(exc)}, exc.status)


def create_app(settings: DashboardSettings) -> Starlette:
    here = resources.files("roost_dashboard")
    templates = Jinja2Templates(directory=str(here / "templates"))
    templates.env.filters["duration"] = formatting.duration
    templates.env.filters["trigger"] = formatting.trigger
    templates.env.filters["when"] = formatting.when
    templates.env.filters["wait"] = formatting.wait
    templates.env.filters["compact"] = formatting.compact
    templates.env.filters["outcome"] = formatting.outcome
    templates.env.globals["compact_limit"] = formatting.COMPACT
    shared = Site(api=Api(settings.api_url), templates=templates, settings=settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logger.info(
            "dashboard ready",
            extra={"action": "dashboard_started", "port": settings.dashboard_port},
        )
        yield
        await shared.api.close()

    routes = [
        Route("/", home),
        Route("/sign-in", actions.sign_in_page, methods=["GET"]),
        Route("/sign-in", actions.sign_in, methods=["POST"]),
        Route("/sign-out", actions.sign_out, methods=["POST"]),
        Route("/runs", pages.runs),
        Route("/runs/{run_id}", pages.run),
        Route("/runs/{run_id}/row", pages.run_row),
        Route("/runs/{run_id}/spans", pages.run_spans),
        Route("/runs/{run_id}/children", children.run_children),
        Route("/stream-token", actions.renew_stream_token, methods=["POST"]),
        Route("/vendor/{name}", vendor),
        Route("/runs/{run_id}/cancel", actions.action("cancel"), methods=["POST"]),
        Route("/runs/{run_id}/replay", actions.action("replay"), methods=["POST"]),
        Route("/workers", pages.workers),
        Route("/activity", pages.activity_page),
        Route("/activity/data", pages.activity_data),
        Route("/workflows", pages.workflows),
        Route("/workflows/{name}", pages.workflow),
        Route("/workflows/{name}/runs", actions.trigger, methods=["POST"]),
        Route("/schedules", schedules.schedules_page),
        Route("/schedules/crons/{cron_id}", schedules.cron_page),
        *(
            Route(
                f"/schedules/crons/{{cron_id}}/{verb}",
                schedules.cron_action(verb),
                methods=["POST"],
            )
            for verb in schedules.CRON_VERBS
        ),
        Route(
            "/schedules/scheduled/{scheduled_id}/cancel",
            schedules.cancel_scheduled,
            methods=["POST"],
        ),
        Route("/approvals", approvals.approvals_page),
        *(
            Route(
                f"/approvals/{{approval_id}}/{verb}",
                approvals.decide(verb),
                methods=["POST"],
            )
            for verb in approvals.VERBS
        ),
        Route("/rate-limits", pages.rate_limits),
        Route("/rate-limits/{key:path}", actions.put_rate_limit, methods=["POST"]),
        Route("/health", health),
        Mount("/static", StaticFiles(directory=str(here / "static")), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders, gateway_origin=_origin(settings.gateway_url)),
        Middleware(Authentication, authenticate=session, public=PUBLIC, refuse=refuse),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={ApiError: api_error},
    )
    app.state.dashboard = shared
    return app
