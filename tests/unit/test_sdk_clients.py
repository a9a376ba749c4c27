"""The SDK reaches the api only through its clients (``roost.runs``, ``workflows``,
``workers``, ``events``, ``rate_limits``, ``crons``, ``scheduled``), and the bodies they
send keep the shape the api has always taken."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import roost
from roost import Roost

SDK = Path(roost.__file__).parent
CLIENTS = {
    "_http.py",
    "_runs.py",
    "_workflows.py",
    "_workers.py",
    "_events.py",
    "_ratelimits.py",
    "_crons.py",
    "_scheduled.py",
    "_approvals_client.py",
}


def test_only_the_client_modules_send_requests() -> None:
    offenders = [
        f"{path.relative_to(SDK)}:{n}"
        for path in sorted(SDK.rglob("*.py"))
        if path.name not in CLIENTS or path.parent != SDK
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.request\(", line)
    ]
    assert offenders == []


class FakeApi:
    """Records each request and answers from ``answers`` (by method and path)."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str, Any]] = []
        self.params: list[Any] = []

    def request(
        self, method: str, path: str, *, json: Any = None, params: Any = None, **_: Any
    ) -> Any:
        self.sent.append((method, path, json))
        self.params.append(params)
        return self.answers[(method, path)]

    async def arequest(
        self, method: str, path: str, *, json: Any = None, params: Any = None, **_: Any
    ) -> Any:
        return self.request(method, path, json=json, params=params)


NOW = datetime(2026, 1, 2, tzinfo=UTC).isoformat()
SUMMARY = {"id": "r1", "workflow": "wf", "status": "QUEUED", "created_at": NOW}


def _roost(api: FakeApi) -> Roost:
    client = Roost(token="t")
    client._api = api  # type: ignore[assignment]
    return client


def test_workflow_run_and_run_many_send_the_same_bodies_as_before() -> None:
    api = FakeApi(
        {
            ("POST", "/api/v1/workflows"): {"version": "v1"},
            ("POST", "/api/v1/workflows/wf/runs"): SUMMARY,
            ("POST", "/api/v1/workflows/wf/runs/bulk"): {"runs": [{"id": "a"}]},
        }
    )
    client = _roost(api)
    wf = client.workflow("wf")

    @wf.task()
    def only(input: Any, ctx: Any) -> None: ...

    ref = wf.run({"x": 1}, wait_for_result=False, idempotency_key="k", metadata={"a": "b"})
    refs = wf.run_many([{"x": 1}, None], idempotency_keys=["k1", None], chunk_size=1)
    assert ref.id == "r1" and [r.id for r in refs] == ["a", "a"]
    bodies = [(m, p, b) for m, p, b in api.sent if p != "/api/v1/workflows"]
    assert bodies == [
        (
            "POST",
            "/api/v1/workflows/wf/runs",
            {"input": {"x": 1}, "idempotency_key": "k", "version": "v1", "metadata": {"a": "b"}},
        ),
        (
            "POST",
            "/api/v1/workflows/wf/runs/bulk",
            {
                "runs": [{"input": {"x": 1}, "idempotency_key": "k1", "metadata": {}}],
                "version": "v1",
            },
        ),
        (
            "POST",
            "/api/v1/workflows/wf/runs/bulk",
            {"runs": [{"input": {}, "idempotency_key": None, "metadata": {}}], "version": "v1"},
        ),
    ]
    assert [p for _, p, _ in api.sent].count("/api/v1/workflows") == 1  # registered once


def test_events_and_rate_limits_send_the_same_bodies_as_before() -> None:
    event = {"id": "e1", "key": "k", "created_at": NOW}
    limit = {
        "key": "gh",
        "limit": 3,
        "window": None,
        "kind": "concurrency",
        "units_in_use": 0,
        "units_left": 3,
        "waiting": 0,
    }
    api = FakeApi(
        {
            ("POST", "/api/v1/events"): event,
            ("POST", "/api/v1/events/bulk"): {"events": [event]},
            ("PUT", "/api/v1/rate-limits/gh"): limit,
        }
    )
    client = _roost(api)
    client.events.push("k")
    client.events.push_many([{"key": "k", "data": {"a": 1}, "idempotency_key": "i"}])
    client.rate_limits.put("gh", 3)
    assert [b for _, _, b in api.sent] == [
        {"key": "k", "data": {}, "idempotency_key": None},
        {"events": [{"key": "k", "data": {"a": 1}, "idempotency_key": "i"}]},
        {"limit": 3, "duration": None},
    ]


def test_the_aio_twins_send_and_read_what_their_plain_calls_do() -> None:
    event = {"id": "e1", "key": "k", "created_at": NOW}
    limit = {
        "key": "gh/api",
        "limit": 3,
        "window": "minute",
        "kind": "window",
        "units_in_use": 0,
        "units_left": 3,
        "waiting": 0,
    }
    worker = {"id": "basic@host:42", "name": "basic", "status": "alive"}
    answers = {
        ("POST", "/api/v1/events/bulk"): {"events": [event]},
        ("GET", "/api/v1/pushed-events"): {"events": [event], "next_cursor": "c2"},
        ("GET", "/api/v1/pushed-events/e1"): event,
        ("PUT", "/api/v1/rate-limits/gh%2Fapi"): limit,
        ("GET", "/api/v1/rate-limits/gh%2Fapi"): limit,
        ("GET", "/api/v1/rate-limits"): {"rate_limits": [limit]},
        ("GET", "/api/v1/workers"): {"workers": [worker]},
        ("GET", "/api/v1/workers/basic%40host%3A42"): worker,
    }
    plain, awaited = FakeApi(answers), FakeApi(answers)
    sync, aio = _roost(plain), _roost(awaited)
    events = [{"key": "k", "data": {"a": 1}}, {"key": "k", "idempotency_key": "i"}]

    read = [
        sync.events.push_many(events, chunk_size=1),
        sync.events.list("k", limit=5, cursor="c1"),
        sync.events.get("e1"),
        sync.rate_limits.put("gh/api", 3, "minute"),
        sync.rate_limits.get("gh/api"),
        sync.rate_limits.list(),
        sync.workers.list(),
        sync.workers.get("basic@host:42"),
    ]

    async def application() -> list[Any]:
        return [
            await aio.events.aio_push_many(events, chunk_size=1),
            await aio.events.aio_list("k", limit=5, cursor="c1"),
            await aio.events.aio_get("e1"),
            await aio.rate_limits.aio_put("gh/api", 3, "minute"),
            await aio.rate_limits.aio_get("gh/api"),
            await aio.rate_limits.aio_list(),
            await aio.workers.aio_list(),
            await aio.workers.aio_get("basic@host:42"),
        ]

    assert asyncio.run(application()) == read
    assert (awaited.sent, awaited.params) == (plain.sent, plain.params)
    assert len(plain.sent) == 9  # a request per chunk: two events, one each
    assert read[1][1] == "c2" and read[7]["status"] == "alive"


def test_the_cli_trigger_sends_no_version(monkeypatch: pytest.MonkeyPatch) -> None:
    from roost.cli import app, console

    api = FakeApi({("POST", "/api/v1/workflows/wf/runs"): SUMMARY})
    monkeypatch.setattr(console, "Roost", lambda: _roost(api))
    done = CliRunner().invoke(app, ["run", "wf", "--input", '{"x": 1}', "--meta", "a=b"])
    assert done.exit_code == 0, done.output
    assert "run r1 QUEUED" in done.output
    assert api.sent == [
        (
            "POST",
            "/api/v1/workflows/wf/runs",
            {"input": {"x": 1}, "idempotency_key": None, "metadata": {"a": "b"}},
        )
    ]


def test_schedules_send_the_bodies_the_api_takes() -> None:
    cron = {
        "id": "c1",
        "workflow": "wf",
        "name": "n",
        "expression": "0 3 * * *",
        "timezone": "UTC",
        "catch_up": "latest",
        "declared": False,
        "paused": False,
        "next_fire_at": NOW,
        "created_at": NOW,
    }
    scheduled = {
        "id": "s1",
        "workflow": "wf",
        "trigger_at": NOW,
        "status": "SCHEDULED",
        "created_at": NOW,
    }
    api = FakeApi(
        {
            ("POST", "/api/v1/workflows"): {"version": "v1"},
            ("POST", "/api/v1/crons"): cron,
            ("POST", "/api/v1/scheduled"): scheduled,
            ("PATCH", "/api/v1/scheduled/s1"): scheduled,
        }
    )
    client = _roost(api)
    wf = client.workflow("wf")

    @wf.task()
    def only(input: Any, ctx: Any) -> None: ...

    client.crons.create(wf, "n", "0 3 * * *", metadata={"a": "b"})
    wf.schedule({"x": 1}, delay="1m30s")
    client.scheduled.reschedule("s1", at=datetime(2030, 1, 1, 3, tzinfo=UTC))
    assert [(m, p, b) for m, p, b in api.sent if p != "/api/v1/workflows"] == [
        (
            "POST",
            "/api/v1/crons",
            {
                "workflow": "wf",
                "name": "n",
                "expression": "0 3 * * *",
                "timezone": "UTC",
                "input": {},
                "metadata": {"a": "b"},
                "catch_up": "latest",
                "paused": False,
            },
        ),
        (
            "POST",
            "/api/v1/scheduled",
            {
                "delay_seconds": 90.0,
                "workflow": "wf",
                "input": {"x": 1},
                "metadata": {},
            },
        ),
        (
            "PATCH",
            "/api/v1/scheduled/s1",
            {"at": "2030-01-01T03:00:00+00:00"},
        ),
    ]
    assert [p for _, p, _ in api.sent].count("/api/v1/workflows") == 1  # registered once
