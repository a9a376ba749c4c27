"""The dashboard's side of the shared authentication middleware, with no api behind it:
which pages need a session, where a missing one leads, and what an api that cannot be
reached shows."""

from __future__ import annotations

import warnings

from roost_dashboard.app import create_app
from roost_dashboard.security import SESSION_COOKIE
from roost_dashboard.settings import DashboardSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2
    from starlette.testclient import TestClient

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers


def client(**cookies: str) -> TestClient:
    app = create_app(DashboardSettings(api_url=NOWHERE))
    return TestClient(app, follow_redirects=False, cookies=cookies)


def test_a_page_without_a_session_sends_to_sign_in_and_clears_the_cookie() -> None:
    for method, path in [("GET", "/runs"), ("GET", "/runs/abc"), ("POST", "/stream-token")]:
        r = client().request(method, path)
        assert (r.status_code, r.headers["location"]) == (303, "/sign-in"), path
        assert f'{SESSION_COOKIE}=""' in r.headers["set-cookie"]
        assert r.headers["x-frame-options"] == "DENY"  # still inside the security headers


def test_sign_in_the_probe_and_the_way_home_need_no_session() -> None:
    assert client().get("/sign-in").status_code == 200
    assert client().get("/health").text == "ok"
    assert client().get("/").headers["location"] == "/runs"
    assert client().get("/nowhere").status_code == 404


def test_a_session_reaches_the_page_and_an_unreachable_api_is_a_503_page() -> None:
    r = client(**{SESSION_COOKIE: "rst_whatever"}).get("/workers")
    assert r.status_code == 503
    assert "unreachable" in r.text
