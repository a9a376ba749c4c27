"""One authentication middleware for the HTTP services (api, gateway, dashboard).

Each service says where its credentials come from and how they are checked (an
``Authenticator``: the api's Bearer header and the gateway's header or ``?token=`` stream
token, checked against PostgreSQL by a ``TokenVerifier``; the dashboard's session cookie,
checked by the api on each call a page makes) and how a refusal is answered (a
``Refusal``: the JSON error body, or the dashboard's way back to sign-in). The middleware
puts the principal on ``request.user`` (read it with ``principal_of`` or ``tenant_of``).

Only a request that a non-public route will serve is authenticated: a path no route
matches still gets its 404, a wrong method its 405, whatever the credentials.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roost_core.auth import Principal, TokenVerifier
from roost_core.db import translate_errors
from roost_core.errors import AuthenticationError, RoostError

T = TypeVar("T")

Authenticator = Callable[[HTTPConnection], Awaitable[Any]]
"""Finds a request's credentials and checks them: the principal, or raise a RoostError
(AuthenticationError when they are missing or refused)."""

Refusal = Callable[[HTTPConnection, RoostError], Response]
"""The response to a request whose credentials were missing or refused."""


def error_response(request: HTTPConnection, exc: RoostError) -> Response:
    """A Roost error as the HTTP services' JSON body, with the error's status."""
    return JSONResponse(
        {"error": {"code": exc.code, "message": str(exc)}}, status_code=exc.http_status
    )


def bearer_token(verifier: TokenVerifier) -> Authenticator:
    """An API token in the ``Authorization: Bearer`` header (the api)."""

    async def authenticate(conn: HTTPConnection) -> Principal:
        with translate_errors():
            return await verifier.principal(conn.headers.get("authorization"))

    return authenticate


def bearer_or_stream_token(verifier: TokenVerifier) -> Authenticator:
    """An API token in the ``Authorization`` header or, when there is no header, a stream
    token in ``?token=`` (the gateway: browsers' EventSource cannot send headers)."""

    async def authenticate(conn: HTTPConnection) -> Principal:
        header = conn.headers.get("authorization")
        token = conn.query_params.get("token")
        with translate_errors():
            if token and not header:
                return await verifier.stream_principal(token)
            return await verifier.principal(header)

    return authenticate


def user_of(request: HTTPConnection, kind: type[T]) -> T:
    """What the middleware put on the request (``request.user``), of the service's kind."""
    found = request.scope.get("user")
    if not isinstance(found, kind):
        raise AuthenticationError(f"no authenticated {kind.__name__} for {request.url.path!r}")
    return found


def principal_of(request: HTTPConnection) -> Principal:
    """Who the request's token speaks for, as the middleware found it."""
    return user_of(request, Principal)


def tenant_of(request: HTTPConnection) -> str:
    """The tenant id of the request's token."""
    return principal_of(request).tenant_id


class Authentication:
    """ASGI middleware: authenticates requests to every route but the ``public`` ones
    (named by their path templates, e.g. ``/health``, ``/runs/{run_id}``), and answers
    the ones it refuses with ``refuse``.

    A credential can also be refused later, by whatever checks it on the way (the
    dashboard's session token is checked by the api): an ``AuthenticationError`` that
    no exception handler took, raised before the response started, is answered with
    ``refuse`` too.
    """

    def __init__(
        self,
        app: ASGIApp,
        authenticate: Authenticator,
        public: Collection[str],
        refuse: Refusal = error_response,
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.public = frozenset(public)
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.guarded(scope):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope, receive)
        try:
            scope["user"] = await self.authenticate(conn)
        except RoostError as exc:
            await self.refuse(conn, exc)(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except AuthenticationError as exc:
            if started:
                raise
            await self.refuse(conn, exc)(scope, receive, send)

    def guarded(self, scope: Scope) -> bool:
        """Whether the route that will serve this request needs a principal: the first
        route that matches it fully (as the router picks), unless it is public."""
        for route in scope["app"].router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return getattr(route, "path", None) not in self.public
        return False
