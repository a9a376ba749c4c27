"""What every page of the dashboard shares, made once by ``create_app`` and kept in
``app.state``: the api client, the templates and the settings; and the session, which
``roost_core.authentication`` checks (here: finds) before a signed-in page runs.

The session is the user's API token. The dashboard has no database: the api checks the
token on each call a page makes, and a token it refuses (wrong, revoked) ends the
session, back at sign-in with the api's reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from roost_core.authentication import user_of
from roost_core.errors import AuthenticationError, RoostError
from roost_core.events import ALL_TYPES
from roost_dashboard.api import Api
from roost_dashboard.security import SESSION_COOKIE, csrf_token
from roost_dashboard.settings import DashboardSettings


@dataclass
class Site:
    api: Api
    templates: Jinja2Templates
    settings: DashboardSettings


def site(request: Request) -> Site:
    """The process's shared pieces, from the app serving ``request``."""
    found: Site = request.app.state.dashboard
    return found


async def session(conn: HTTPConnection) -> str:
    """The session's API token (checked by the api on the page's calls), or raise."""
    token = conn.cookies.get(SESSION_COOKIE)
    if not token:
        raise AuthenticationError("no session: sign in with an API token")
    return token


def token_of(request: HTTPConnection) -> str:
    """The signed-in user's API token, as the authentication middleware found it."""
    return user_of(request, str)


def to_sign_in(message: str | None = None) -> Response:
    """Back to sign-in, ending the session (with ``message`` on the page, if any)."""
    target = "/sign-in" + (f"?{urlencode({'message': message})}" if message else "")
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def refuse(conn: HTTPConnection, exc: RoostError) -> Response:
    """No session sends to sign-in; a session token the api refused ends the session
    there, with the api's reason."""
    return to_sign_in(f"Signed out: {exc}" if conn.cookies.get(SESSION_COOKIE) else None)


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """A page from its template, with what every page's layout needs."""
    s = site(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    return s.templates.TemplateResponse(
        request,
        name,
        {
            "csrf": csrf_token(cookie) if cookie else "",
            "signed_in": bool(cookie),
            "gateway_url": s.settings.gateway_url.rstrip("/"),
            "event_types": sorted(ALL_TYPES),
            **context,
        },
        status_code=status_code,
    )


async def stream_token(request: Request) -> str:
    """A short-lived token for the browser's EventSource to the gateway (which cannot
    send headers): made for URLs, unlike the API token, which never leaves the cookie."""
    s = site(request)
    body = await s.api.request(
        token_of(request),
        "POST",
        "/api/v1/stream-tokens",
        json={"ttl_seconds": s.settings.stream_token_seconds},
    )
    return str(body["token"])


async def call(request: Request, method: str, path: str, **kwargs: Any) -> Any:
    """The api's answer to a call made with the session's token (``Api.request``)."""
    return await site(request).api.request(token_of(request), method, path, **kwargs)
