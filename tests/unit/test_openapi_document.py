"""The api's OpenAPI document as ``roost_api.openapi`` makes it from the routes'
declarations, and the query models it declares parameters from, as they parse a query
(pure: no database, no broker)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from roost_api import openapi
from roost_api.app import create_app
from roost_api.http import query_of
from roost_api.params import MAX_PAGE, RunListQuery, RunWait, StatsQuery
from roost_api.settings import ApiSettings
from roost_core.errors import BadRequestError


def _document() -> dict[str, Any]:
    app = create_app(ApiSettings())
    [route] = [r for r in app.routes if getattr(r, "path", "") == "/api/v1/openapi.json"]
    assert isinstance(route, Route)
    routes = [r for r in app.routes if r is not route]
    return openapi.document(routes, title="Roost API", version="1")


def _request(query: str) -> Request:
    return Request({"type": "http", "query_string": query.encode(), "headers": []})


def test_every_operation_has_a_unique_id_a_summary_and_security() -> None:
    doc = _document()
    ops = [(path, m, op) for path, ms in doc["paths"].items() for m, op in ms.items()]

    assert len(ops) >= 38
    ids = Counter(op["operationId"] for _, _, op in ops)
    assert [i for i, n in ids.items() if n > 1] == []
    for path, method, op in ops:
        assert op["summary"], (method, path)
        assert "security" in op, (method, path)
    assert "/metrics" not in doc["paths"]


def test_path_parameters_are_declared_with_schemas() -> None:
    doc = _document()
    for path, ops in doc["paths"].items():
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            named = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert declared == named, path
            for p in op.get("parameters", []):
                assert "schema" in p, (path, p["name"])


def test_a_query_model_becomes_parameters_and_not_a_component() -> None:
    doc = _document()
    params = {p["name"]: p for p in doc["paths"]["/api/v1/runs"]["get"]["parameters"]}

    assert set(params) == {
        "workflow",
        "status",
        "since",
        "until",
        "parent_run_id",
        "limit",
        "cursor",
    }
    assert params["limit"]["schema"]["type"] == "integer"
    assert "RunListQuery" not in doc["components"]["schemas"]


def test_error_statuses_are_documented_with_the_error_body() -> None:
    doc = _document()
    cancel = doc["paths"]["/api/v1/runs/{run_id}/tasks/{task}/cancel"]["post"]

    assert {"200", "202", "400", "401", "404", "409", "503"} == set(cancel["responses"])
    assert cancel["requestBody"]["required"] is False
    health = doc["paths"]["/health"]["get"]
    assert set(health["responses"]) == {"200"} and health["security"] == []


def test_an_undeclared_route_is_refused() -> None:
    async def plain(request: Request) -> Response:
        return JSONResponse({})

    with pytest.raises(ValueError, match="has no @operation"):
        openapi.document([Route("/x", plain)], title="t", version="1")


def test_a_query_is_parsed_capped_and_named_when_bad() -> None:
    assert query_of(_request("limit=9999"), RunListQuery).limit == MAX_PAGE
    assert query_of(_request("limit=0"), RunListQuery).limit == 1
    assert query_of(_request("status=queued"), RunListQuery).status == "QUEUED"
    assert query_of(_request("since=0"), RunListQuery).since == datetime(1970, 1, 1, tzinfo=UTC)
    naive = query_of(_request("until=2026-01-02T03:04:05"), RunListQuery).until
    assert naive == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert query_of(_request("wait=600"), RunWait).wait == 60
    assert query_of(_request("workflow="), RunListQuery).workflow is None  # empty text: none

    with pytest.raises(BadRequestError, match=r"query parameter limit=''"):
        query_of(_request("limit="), RunListQuery)  # an empty number is no number

    with pytest.raises(BadRequestError, match=r"query parameter limit='ten'"):
        query_of(_request("limit=ten"), RunListQuery)
    with pytest.raises(BadRequestError, match=r"query parameter since='yesterday'"):
        query_of(_request("since=yesterday"), RunListQuery)
    with pytest.raises(BadRequestError, match=r"query parameter hours='0'"):
        query_of(_request("hours=0"), StatsQuery)
    with pytest.raises(BadRequestError, match=r"query parameter wait='nan'"):
        query_of(_request("wait=nan"), RunWait)
