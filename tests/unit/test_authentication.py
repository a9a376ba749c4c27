"""The shared authentication middleware (roost_core.authentication), with a fake check in
place of the token verifier: which routes it guards, what it puts on the request, and
how it answers missing or refused credentials."""

from __future__ import annotations

import warnings

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from roost_core.auth import Principal
from roost_core.authentication import Authentication, tenant_of
from roost_core.errors import AuthenticationError, DatabaseUnavailableError, RoostError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2
    from starlette.testclient import TestClient

GOOD = Principal(tenant_id="tenant-1", token_id="token-1", token_hash="hash")


async def check(conn: HTTPConnection) -> Principal:
    header = conn.headers.get("authorization")
    if header == "Bearer down":
        raise DatabaseUnavailableError("PostgreSQL is unavailable: test")
    if header != "Bearer good":
        raise AuthenticationError(f"invalid token {header!r}")
    return GOOD


async def whoami(request: Request) -> Response:
    return JSONResponse({"tenant": tenant_of(request)})


async def refused_later(request: Request) -> Response:
    raise AuthenticationError("the upstream refused the token")


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


def refuse(conn: HTTPConnection, exc: RoostError) -> Response:
    return JSONResponse({"refused": str(exc)}, status_code=exc.http_status)


def client() -> TestClient:
    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/items/{item_id}", whoami, methods=["GET"]),
            Route("/later", refused_later, methods=["GET"]),
        ],
        middleware=[
            Middleware(Authentication, authenticate=check, public={"/health"}, refuse=refuse)
        ],
    )
    return TestClient(app, raise_server_exceptions=False)


def test_a_guarded_route_gets_the_principal_on_the_request() -> None:
    r = client().get("/items/1", headers={"Authorization": "Bearer good"})
    assert (r.status_code, r.json()) == (200, {"tenant": "tenant-1"})


def test_missing_or_refused_credentials_are_answered_by_the_refusal() -> None:
    r = client().get("/items/1")
    assert (r.status_code, r.json()) == (401, {"refused": "invalid token None"})
    r = client().get("/items/1", headers={"Authorization": "Bearer bad"})
    assert (r.status_code, r.json()) == (401, {"refused": "invalid token 'Bearer bad'"})


def test_a_check_that_cannot_be_made_is_answered_with_its_own_status() -> None:
    r = client().get("/items/1", headers={"Authorization": "Bearer down"})
    assert r.status_code == 503


def test_public_routes_need_no_credentials() -> None:
    r = client().get("/health")
    assert (r.status_code, r.text) == (200, "ok")


def test_unknown_paths_and_wrong_methods_keep_their_404_and_405() -> None:
    assert client().get("/nowhere").status_code == 404
    assert client().post("/items/1").status_code == 405


def test_a_credential_refused_while_the_request_is_served_is_answered_by_the_refusal() -> None:
    r = client().get("/later", headers={"Authorization": "Bearer good"})
    assert (r.status_code, r.json()) == (401, {"refused": "the upstream refused the token"})


def test_the_default_refusal_is_the_json_error_body() -> None:
    app = Starlette(
        routes=[Route("/items/{item_id}", whoami, methods=["GET"])],
        middleware=[Middleware(Authentication, authenticate=check, public=())],
    )
    r = TestClient(app).get("/items/1")
    assert r.status_code == 401
    assert r.json() == {"error": {"code": "unauthenticated", "message": "invalid token None"}}
