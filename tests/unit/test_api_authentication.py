"""The api's use of the shared authentication middleware, with no server behind it
(the app's lifespan does not run, so its database pool stays closed)."""

from __future__ import annotations

import warnings

from roost_api.app import create_app
from roost_api.settings import ApiSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2
    from starlette.testclient import TestClient


def client() -> TestClient:
    settings = ApiSettings(
        database_url="postgresql://nobody@127.0.0.1:9/none",
        broker_url="amqp://guest:guest@127.0.0.1:9/",
    )
    return TestClient(create_app(settings), follow_redirects=False)


def test_a_route_without_a_token_is_a_401_naming_what_is_missing() -> None:
    r = client().get("/api/v1/runs")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    assert "missing Authorization header" in r.json()["error"]["message"]


def test_a_token_that_cannot_be_checked_for_want_of_a_database_is_a_503() -> None:
    r = client().get("/api/v1/runs", headers={"Authorization": "Bearer rst_anything"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "database_unavailable"


def test_public_routes_unknown_paths_and_wrong_methods_answer_as_without_auth() -> None:
    assert client().get("/health").json() == {"status": "ok"}
    assert client().get("/api/v1/openapi.json").status_code == 200
    assert client().get("/api/v1/nope").status_code == 404
    assert client().delete("/api/v1/runs/abc").status_code == 405
