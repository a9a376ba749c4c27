"""The api over plain HTTP, as a user with curl or httpx sees it: authentication,
errors that name what is wrong, workflow versions, listing runs, OpenAPI and long polls.

Workflows registered here are named ``http-...`` with a random suffix and are served by
no worker, so their runs stay QUEUED."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness import Process, Stack


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    """An httpx client for the stack's api, sending the stack's token."""
    with httpx.Client(
        base_url=stack.api_url, timeout=30, headers={"Authorization": f"Bearer {stack.token}"}
    ) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(stack: Stack) -> Iterator[httpx.Client]:
    """An httpx client for the stack's api that sends no token."""
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        yield client


def unique(prefix: str) -> str:
    return f"http-{prefix}-{uuid.uuid4().hex[:8]}"


def definition(name: str, *tasks: tuple[str, list[str]]) -> dict[str, Any]:
    return {"name": name, "tasks": [{"name": t, "parents": p} for t, p in tasks]}


def register(api: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return api.post("/api/v1/workflows", json=body)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) >= {"code", "message"}, body
    return dict(body["error"])


def registered(api: httpx.Client, prefix: str, *tasks: tuple[str, list[str]]) -> str:
    """Register a fresh workflow (no worker serves it) and return its name."""
    name = unique(prefix)
    r = register(api, definition(name, *(tasks or (("only", []),))))
    assert r.status_code == 201, r.text
    return name


def trigger(api: httpx.Client, workflow: str, run_input: Any = None) -> dict[str, Any]:
    r = api.post(f"/api/v1/workflows/{workflow}/runs", json={"input": run_input or {}})
    assert r.status_code == 201, r.text
    return dict(r.json())


# -- authentication -------------------------------------------------------------------


def test_a_request_without_an_authorization_header_is_refused_with_401_saying_it_is_missing(
    anonymous: httpx.Client,
) -> None:
    r = anonymous.get("/api/v1/workflows")

    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/json")
    err = error_of(r)
    assert err["code"] == "unauthenticated"
    assert "missing" in err["message"] and "Authorization" in err["message"]


def test_a_wrong_token_is_refused_as_invalid_or_revoked(anonymous: httpx.Client) -> None:
    r = anonymous.get("/api/v1/workflows", headers={"Authorization": "Bearer rst_not-a-token"})

    assert r.status_code == 401
    err = error_of(r)
    assert err["code"] == "unauthenticated"
    assert err["message"] == "invalid or revoked token"


@pytest.mark.parametrize("header", ["Basic xyz", "Bearer", "rst_abc"])
def test_a_malformed_authorization_header_is_refused_with_401(
    anonymous: httpx.Client, header: str
) -> None:
    r = anonymous.get("/api/v1/runs", headers={"Authorization": header})

    assert r.status_code == 401
    err = error_of(r)
    assert err["code"] == "unauthenticated"
    assert "malformed" in err["message"] and "Bearer" in err["message"]


def test_every_api_route_but_health_and_ready_needs_a_token(anonymous: httpx.Client) -> None:
    run_id = str(uuid.uuid4())
    for method, path in [
        ("GET", "/api/v1/workflows"),
        ("POST", "/api/v1/workflows"),
        ("GET", "/api/v1/workflows/t-chain"),
        ("POST", "/api/v1/workflows/t-chain/runs"),
        ("GET", "/api/v1/runs"),
        ("GET", f"/api/v1/runs/{run_id}"),
    ]:
        r = anonymous.request(method, path, json={} if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.text)
        assert error_of(r)["code"] == "unauthenticated"


def test_health_and_ready_answer_200_without_a_token(anonymous: httpx.Client) -> None:
    health = anonymous.get("/health")
    ready = anonymous.get("/ready")

    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


# -- unknown workflows and runs ----------------------------------------------------------


def test_triggering_an_unknown_workflow_is_a_404_naming_it(api: httpx.Client) -> None:
    r = api.post("/api/v1/workflows/nope/runs", json={"input": {}})

    assert r.status_code == 404
    err = error_of(r)
    assert err["code"] == "unknown_workflow"
    assert "'nope'" in err["message"]


def test_reading_an_unknown_workflow_is_a_404_naming_it(api: httpx.Client) -> None:
    r = api.get("/api/v1/workflows/nope")

    assert r.status_code == 404
    assert error_of(r)["code"] == "unknown_workflow"
    assert "'nope'" in error_of(r)["message"]


def test_reading_an_unknown_run_is_a_404_naming_its_id(api: httpx.Client) -> None:
    run_id = str(uuid.uuid4())

    r = api.get(f"/api/v1/runs/{run_id}")

    assert r.status_code == 404
    err = error_of(r)
    assert err["code"] == "unknown_run"
    assert run_id in err["message"]


def test_reading_a_run_by_something_that_is_not_a_uuid_is_a_404_naming_the_value(
    api: httpx.Client,
) -> None:
    r = api.get("/api/v1/runs/not-a-uuid")

    assert r.status_code == 404
    err = error_of(r)
    assert err["code"] == "unknown_run"
    assert "not-a-uuid" in err["message"]


def test_long_polling_an_unknown_run_is_a_404_at_once(api: httpx.Client) -> None:
    run_id = str(uuid.uuid4())
    began = time.monotonic()

    r = api.get(f"/api/v1/runs/{run_id}", params={"wait": 5})

    assert r.status_code == 404
    assert error_of(r)["code"] == "unknown_run" and run_id in error_of(r)["message"]
    assert time.monotonic() - began < 4


# -- registering definitions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "tasks", "expected"),
    [
        ("cycle", [("a", ["b"]), ("b", ["a"])], ["cycle", "a -> b -> a"]),
        ("self-cycle", [("a", ["a"])], ["cycle", "a -> a"]),
        ("unknown-parent", [("a", []), ("b", ["ghost"])], ["unknown parent", "'ghost'", "'b'"]),
        ("duplicate", [("a", []), ("a", [])], ["two tasks named", "'a'"]),
        ("empty", [], ["has no tasks"]),
        ("bad-task-name", [("a b", [])], ["task name", "'a b'", "invalid"]),
        ("parent-twice", [("a", []), ("b", ["a", "a"])], ["'b'", "parent twice"]),
    ],
)
def test_registering_a_bad_definition_is_a_422_naming_the_problem(
    api: httpx.Client, case: str, tasks: list[tuple[str, list[str]]], expected: list[str]
) -> None:
    name = unique(case)

    r = register(api, definition(name, *tasks))

    assert r.status_code == 422, r.text
    err = error_of(r)
    assert err["code"] == "invalid_definition"
    for fragment in expected:
        assert fragment in err["message"], (fragment, err["message"])
    # Nothing was registered.
    assert api.get(f"/api/v1/workflows/{name}").status_code == 404


def test_registering_a_workflow_whose_name_has_a_space_is_a_422_naming_it(
    api: httpx.Client,
) -> None:
    r = register(api, definition("http bad name", ("a", [])))

    assert r.status_code == 422
    err = error_of(r)
    assert err["code"] == "invalid_definition"
    assert "workflow name 'http bad name' is invalid" in err["message"]


def test_registering_a_definition_of_the_wrong_shape_is_a_422_naming_the_field(
    api: httpx.Client,
) -> None:
    r = register(api, {"name": unique("shape"), "tasks": [{"parents": []}]})

    assert r.status_code == 422
    err = error_of(r)
    assert err["code"] == "invalid_definition"
    assert "tasks.0.name" in err["message"]


def test_registering_a_body_that_is_not_json_is_a_400_bad_request(api: httpx.Client) -> None:
    r = api.post(
        "/api/v1/workflows", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "bad_request"
    assert "not valid JSON" in err["message"]


def test_registering_the_same_definition_twice_keeps_one_version_and_a_change_adds_one(
    api: httpx.Client,
) -> None:
    name = unique("versions")
    v1 = definition(name, ("a", []), ("b", ["a"]))
    v2 = definition(name, ("a", []), ("b", ["a"]), ("c", ["b"]))

    first = register(api, v1)
    again = register(api, v1)
    changed = register(api, v2)

    assert first.status_code == 201
    assert first.json()["created"] is True and first.json()["name"] == name
    assert again.status_code == 200
    assert again.json() == {"name": name, "version": first.json()["version"], "created": False}
    assert changed.status_code == 201 and changed.json()["created"] is True
    assert changed.json()["version"] != first.json()["version"]

    listed = api.get("/api/v1/workflows")
    assert listed.status_code == 200
    [entry] = [w for w in listed.json()["workflows"] if w["name"] == name]
    assert entry["versions"] == 2
    assert entry["version"] == changed.json()["version"]
    assert [t["name"] for t in entry["tasks"]] == ["a", "b", "c"]

    shown = api.get(f"/api/v1/workflows/{name}")
    assert shown.status_code == 200
    assert shown.json()["version"] == changed.json()["version"]
    old = api.get(f"/api/v1/workflows/{name}", params={"version": first.json()["version"]})
    assert old.status_code == 200
    assert [t["name"] for t in old.json()["tasks"]] == ["a", "b"]


def test_a_run_in_flight_keeps_the_version_it_was_triggered_on(api: httpx.Client) -> None:
    name = unique("inflight")
    r1 = register(api, definition(name, ("first", []), ("second", ["first"])))
    assert r1.status_code == 201
    run1 = trigger(api, name, {"n": 1})

    r2 = register(
        api, definition(name, ("first", []), ("second", ["first"]), ("third", ["second"]))
    )
    assert r2.status_code == 201
    run2 = trigger(api, name, {"n": 2})

    got1 = api.get(f"/api/v1/runs/{run1['id']}").json()
    got2 = api.get(f"/api/v1/runs/{run2['id']}").json()
    assert got1["workflow_version"] == r1.json()["version"]
    assert got2["workflow_version"] == r2.json()["version"]
    assert got1["workflow_version"] != got2["workflow_version"]
    assert [t["name"] for t in got1["tasks"]] == ["first", "second"]
    assert [t["name"] for t in got2["tasks"]] == ["first", "second", "third"]
    assert got1["status"] == got2["status"] == "QUEUED"
    assert got1["input"] == {"n": 1} and got2["input"] == {"n": 2}


def test_a_run_can_be_triggered_on_an_older_version_by_naming_it(api: httpx.Client) -> None:
    name = unique("pinned")
    r1 = register(api, definition(name, ("first", [])))
    r2 = register(api, definition(name, ("first", []), ("second", ["first"])))
    assert r1.status_code == r2.status_code == 201

    r = api.post(
        f"/api/v1/workflows/{name}/runs", json={"input": {}, "version": r1.json()["version"]}
    )
    missing = api.post(f"/api/v1/workflows/{name}/runs", json={"input": {}, "version": "feed"})

    assert r.status_code == 201
    assert r.json()["workflow_version"] == r1.json()["version"]
    assert [t["name"] for t in r.json()["tasks"]] == ["first"]
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "unknown_workflow"
    assert "'feed'" in error_of(missing)["message"]


# -- malformed requests --------------------------------------------------------------------


def test_triggering_with_an_unknown_field_in_the_body_is_a_400_naming_the_field(
    api: httpx.Client,
) -> None:
    name = registered(api, "bogus")

    r = api.post(f"/api/v1/workflows/{name}/runs", json={"input": {}, "bogus": 1})

    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "bad_request"
    assert "bogus" in err["message"]
    runs = api.get("/api/v1/runs", params={"workflow": name}).json()["runs"]
    assert runs == []


def test_triggering_with_a_body_that_is_not_json_is_a_400(api: httpx.Client) -> None:
    name = registered(api, "notjson")

    r = api.post(
        f"/api/v1/workflows/{name}/runs",
        content=b"input=1",
        headers={"Content-Type": "application/json"},
    )

    assert r.status_code == 400
    assert error_of(r)["code"] == "bad_request"
    assert "not valid JSON" in error_of(r)["message"]


def test_a_wait_that_is_not_a_number_is_a_400_naming_wait(api: httpx.Client) -> None:
    name = registered(api, "waitparam")
    run = trigger(api, name)

    r = api.get(f"/api/v1/runs/{run['id']}", params={"wait": "abc"})

    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "bad_request"
    assert "wait" in err["message"] and "'abc'" in err["message"]


def test_a_wait_of_nan_is_a_400_naming_wait(
    api: httpx.Client, stack: Stack, basic_worker: Process
) -> None:
    # t-chain is served, so the request the api holds today ends with the run.
    run = trigger(api, "t-chain", {"task_id": "http-nan"})

    r = api.get(f"/api/v1/runs/{run['id']}", params={"wait": "nan"}, timeout=30)

    assert r.status_code == 400, r.text
    err = error_of(r)
    assert err["code"] == "bad_request"
    assert "wait" in err["message"] and "nan" in err["message"]


# -- listing runs ----------------------------------------------------------------------------


def test_runs_can_be_listed_by_workflow_and_by_status(api: httpx.Client) -> None:
    name = registered(api, "listing")
    other = registered(api, "listing-other")
    mine = [trigger(api, name)["id"] for _ in range(3)]
    theirs = trigger(api, other)["id"]

    by_workflow = api.get("/api/v1/runs", params={"workflow": name})
    queued = api.get("/api/v1/runs", params={"workflow": name, "status": "QUEUED"})
    succeeded = api.get("/api/v1/runs", params={"workflow": name, "status": "SUCCEEDED"})
    everything = api.get("/api/v1/runs", params={"status": "QUEUED", "limit": 500})

    assert by_workflow.status_code == 200
    assert [r["id"] for r in by_workflow.json()["runs"]] == list(reversed(mine))
    assert all(r["workflow"] == name for r in by_workflow.json()["runs"])
    assert by_workflow.json()["next_cursor"] is None
    assert [r["id"] for r in queued.json()["runs"]] == list(reversed(mine))
    assert succeeded.status_code == 200 and succeeded.json()["runs"] == []
    all_ids = {r["id"] for r in everything.json()["runs"]}
    assert set(mine) | {theirs} <= all_ids
    assert all(r["status"] == "QUEUED" for r in everything.json()["runs"])


def test_listing_runs_by_an_unknown_status_is_a_400_naming_it(api: httpx.Client) -> None:
    r = api.get("/api/v1/runs", params={"status": "DONE"})

    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "bad_request"
    assert "'DONE'" in err["message"] and "QUEUED" in err["message"]


def test_a_limit_of_nan_is_a_400_naming_limit(api: httpx.Client) -> None:
    r = api.get("/api/v1/runs", params={"limit": "nan"})

    assert r.status_code == 400, r.text
    err = error_of(r)
    assert err["code"] == "bad_request"
    assert "limit" in err["message"]


def test_a_limit_that_is_not_a_number_is_a_400_naming_limit(api: httpx.Client) -> None:
    r = api.get("/api/v1/runs", params={"limit": "ten"})

    assert r.status_code == 400
    assert error_of(r)["code"] == "bad_request"
    assert "limit" in error_of(r)["message"] and "'ten'" in error_of(r)["message"]


def test_listing_runs_with_a_malformed_cursor_is_a_400(api: httpx.Client) -> None:
    r = api.get("/api/v1/runs", params={"cursor": "garbage"})

    assert r.status_code == 400
    assert error_of(r)["code"] == "bad_request"
    assert "'garbage'" in error_of(r)["message"]


def test_pages_of_two_runs_are_disjoint_and_cover_every_run_newest_first(
    api: httpx.Client,
) -> None:
    name = registered(api, "paging")
    created = [trigger(api, name, {"i": i})["id"] for i in range(5)]

    pages: list[list[str]] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"workflow": name, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = api.get("/api/v1/runs", params=params)
        assert r.status_code == 200, r.text
        page = [run["id"] for run in r.json()["runs"]]
        assert len(page) <= 2
        if page:
            pages.append(page)
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    else:
        pytest.fail(f"pagination did not end: {pages}")

    assert [len(p) for p in pages] == [2, 2, 1]
    flat = [run_id for page in pages for run_id in page]
    assert len(flat) == len(set(flat))  # disjoint
    assert flat == list(reversed(created))  # all of them, newest first


def test_a_page_exactly_as_long_as_the_limit_is_followed_by_an_empty_last_page(
    api: httpx.Client,
) -> None:
    name = registered(api, "paging-exact")
    created = [trigger(api, name)["id"] for _ in range(2)]

    first = api.get("/api/v1/runs", params={"workflow": name, "limit": 2}).json()
    assert [r["id"] for r in first["runs"]] == list(reversed(created))
    assert first["next_cursor"]
    second = api.get(
        "/api/v1/runs", params={"workflow": name, "limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert second == {"runs": [], "next_cursor": None}


# -- OpenAPI -----------------------------------------------------------------------------------


def test_the_openapi_document_describes_the_api(api: httpx.Client) -> None:
    r = api.get("/api/v1/openapi.json")

    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert "/api/v1/runs/{run_id}" in paths
    assert "/api/v1/workflows/{name}/runs" in paths
    assert "post" in paths["/api/v1/workflows/{name}/runs"]
    assert "get" in paths["/api/v1/runs/{run_id}"]
    assert {"/api/v1/workflows", "/api/v1/runs", "/api/v1/workflows/{name}"} <= set(paths)


def test_the_openapi_document_describes_the_wait_parameter_of_a_run(api: httpx.Client) -> None:
    doc = api.get("/api/v1/openapi.json").json()

    [wait] = [
        p for p in doc["paths"]["/api/v1/runs/{run_id}"]["get"]["parameters"] if p["name"] == "wait"
    ]
    assert wait["in"] == "query"
    assert wait["required"] is False and wait["schema"]["type"] == "number"
    assert "max 60" in wait["description"]


# -- long polling ------------------------------------------------------------------------------


def test_a_long_poll_on_a_run_that_cannot_finish_returns_after_the_wait_still_queued(
    api: httpx.Client,
) -> None:
    name = registered(api, "longpoll")
    run = trigger(api, name)

    began = time.monotonic()
    r = api.get(f"/api/v1/runs/{run['id']}", params={"wait": 0.5})
    took = time.monotonic() - began

    assert r.status_code == 200
    assert r.json()["id"] == run["id"]
    assert r.json()["status"] == "QUEUED"
    assert 0.4 <= took <= 5, took


def test_a_long_poll_without_wait_answers_at_once(api: httpx.Client) -> None:
    name = registered(api, "nowait")
    run = trigger(api, name)

    began = time.monotonic()
    r = api.get(f"/api/v1/runs/{run['id']}", params={"wait": 0})

    assert r.status_code == 200 and r.json()["status"] == "QUEUED"
    assert time.monotonic() - began < 2
