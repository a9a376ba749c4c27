"""Live events over SSE from the gateway: a run's whole story, in order, resumable."""

from __future__ import annotations

import asyncio
import json
import threading
from types import ModuleType

import httpx
import pytest
from httpx_sse import connect_sse

import roost
from harness import Process, Stack


def _log_ids(stack: Stack, run_id: str) -> list[int]:
    return [
        int(r[0]) for r in stack.sql("SELECT id FROM events WHERE run_id = %s ORDER BY seq", run_id)
    ]  # type: ignore[call-overload]


def test_a_runs_stream_carries_every_event_in_order_and_ends_with_the_run(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.chatty.run({"chunks": 3, "pause": 0.05}, wait_for_result=False)

    events = list(ref.stream())

    assert [e.id for e in events] == _log_ids(stack, ref.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "run.succeeded"
    assert events[-1].data["output"]["report"] == {"reported": True}
    streamed = [e.data for e in events if e.type == "task.stream"]
    assert streamed == [{"tokens": 100}, {"tokens": 200}, {"tokens": 300}]
    logs = [(e.task, e.data["message"]) for e in events if e.type == "task.log"]
    assert logs == [("fetch", "cloning repository"), ("report", "writing report")]
    progress = [e.data["fraction"] for e in events if e.type == "task.progress"]
    assert progress == [0.5, 1.0]


def test_a_subscriber_that_attaches_after_the_run_ended_gets_its_whole_history(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.chatty.run({"chunks": 1}, wait_for_result=False)
    ref.result(timeout=60)

    events = list(flows.roost.runs.subscribe(ref.id))

    assert [e.id for e in events] == _log_ids(stack, ref.id)
    assert events[0].type == "run.queued" and events[-1].type == "run.succeeded"


def test_resuming_with_last_event_id_misses_nothing_and_repeats_nothing(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.chatty.run({"chunks": 12, "pause": 0.1}, wait_for_result=False)
    url = f"{stack.gateway_url}/api/v1/runs/{ref.id}/events"
    headers = {"Authorization": f"Bearer {stack.token}"}
    first: list[int] = []
    with httpx.Client(timeout=httpx.Timeout(10, read=30)) as client:
        with connect_sse(client, "GET", url, headers=headers) as source:
            for sse in source.iter_sse():
                first.append(int(sse.id))
                if json.loads(sse.data)["type"] == "task.stream" and len(first) >= 7:
                    break  # a forced disconnect mid-run
        assert first
        rest: list[int] = []
        resume = {**headers, "Last-Event-ID": str(first[-1])}
        with connect_sse(client, "GET", url, headers=resume) as source:
            for sse in source.iter_sse():
                rest.append(int(sse.id))
                assert sse.event == json.loads(sse.data)["type"]

    assert first + rest == _log_ids(stack, ref.id)
    assert set(first).isdisjoint(rest)


def test_the_async_stream_and_a_type_filter(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.chatty.run({"chunks": 2}, wait_for_result=False)

    async def collect() -> list[roost.RunEvent]:
        return [e async for e in ref.stream(types=["task.stream", "run.*"])]

    events = asyncio.run(collect())

    assert [e.type for e in events] == [
        "run.queued",
        "run.started",
        "task.stream",
        "task.stream",
        "run.succeeded",
    ]


def test_a_workflow_stream_and_the_tenant_stream_see_new_runs(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    got: dict[str, list[str]] = {"workflow": [], "tenant": []}
    ready = threading.Barrier(3)
    headers = {"Authorization": f"Bearer {stack.token}"}

    def listen(kind: str, path: str) -> None:
        url = stack.gateway_url + path
        with (
            httpx.Client(timeout=httpx.Timeout(10, read=30)) as client,
            connect_sse(client, "GET", url, headers=headers) as source,
        ):
            ready.wait()
            for sse in source.iter_sse():
                got[kind].append(sse.event)
                if sse.event == "run.succeeded":
                    return

    threads = [
        threading.Thread(target=listen, args=("workflow", "/api/v1/workflows/t-chatty/events")),
        threading.Thread(
            target=listen, args=("tenant", "/api/v1/events?types=run.*,task.succeeded")
        ),
    ]
    for t in threads:
        t.start()
    ready.wait()
    flows.chatty.run({"chunks": 1}, timeout=60)
    for t in threads:
        t.join(timeout=30)

    assert got["workflow"][0] == "run.queued" and got["workflow"][-1] == "run.succeeded"
    assert "task.log" in got["workflow"]
    assert set(got["tenant"]) == {"run.queued", "run.started", "task.succeeded", "run.succeeded"}


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/api/v1/runs/00000000-0000-0000-0000-000000000000/events", 404, "not found"),
        ("/api/v1/runs/not-a-run/events", 404, "not-a-run"),
        ("/api/v1/workflows/no-such-workflow/events", 404, "no-such-workflow"),
        ("/api/v1/events?types=task.bogus", 400, "task.bogus"),
        ("/api/v1/events?after=yesterday", 400, "yesterday"),
    ],
)
def test_bad_requests_get_clear_errors(stack: Stack, path: str, status: int, needle: str) -> None:
    resp = httpx.get(
        stack.gateway_url + path, headers={"Authorization": f"Bearer {stack.token}"}, timeout=10
    )
    assert resp.status_code == status
    assert needle in resp.json()["error"]["message"]


def test_tokens_a_missing_or_wrong_one_is_refused_a_stream_token_works_in_the_url(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.chatty.run({"chunks": 1}, wait_for_result=False)
    ref.result(timeout=60)
    url = f"{stack.gateway_url}/api/v1/runs/{ref.id}/events"
    assert httpx.get(url, timeout=10).status_code == 401
    assert (
        httpx.get(url, headers={"Authorization": "Bearer rst_wrong"}, timeout=10).status_code == 401
    )
    # An API token is not accepted in a URL (it would end up in logs).
    refused = httpx.get(url, params={"token": stack.token}, timeout=10)
    assert refused.status_code == 401 and "stream token" in refused.json()["error"]["message"]

    minted = httpx.post(
        f"{stack.api_url}/api/v1/stream-tokens",
        headers={"Authorization": f"Bearer {stack.token}"},
        json={"ttl_seconds": 60},
        timeout=10,
    )
    assert minted.status_code == 201
    token = minted.json()["token"]
    with (
        httpx.Client(timeout=10) as client,
        connect_sse(client, "GET", url, params={"token": token}) as source,
    ):
        types = [sse.event for sse in source.iter_sse()]
    assert types[0] == "run.queued" and types[-1] == "run.succeeded"
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    assert httpx.get(url, params={"token": forged}, timeout=10).status_code == 401


def test_an_ended_runs_stream_resumed_after_its_last_event_says_204(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.chatty.run({"chunks": 1}, wait_for_result=False)
    ref.result(timeout=60)
    last = _log_ids(stack, ref.id)[-1]
    resp = httpx.get(
        f"{stack.gateway_url}/api/v1/runs/{ref.id}/events",
        headers={"Authorization": f"Bearer {stack.token}", "Last-Event-ID": str(last)},
        timeout=10,
    )
    assert resp.status_code == 204  # EventSource stops reconnecting


def test_cli_watch_shows_every_task_and_the_outcome(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    shown = stack.roost("run", "t-chatty", "--input", '{"chunks": 2, "pause": 0.05}', "--watch")

    assert "fetch" in shown and "report" in shown
    assert "run SUCCEEDED" in shown
    assert shown.count("SUCCEEDED") >= 3  # both tasks and the run


def test_cli_logs_prints_a_runs_lines_and_follow_ends_with_the_run(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.chatty.run({"chunks": 8, "pause": 0.1}, wait_for_result=False)

    followed = stack.roost("runs", "logs", ref.id, "--follow", timeout=60)
    printed = stack.roost("runs", "logs", ref.id)
    only_report = stack.roost("runs", "logs", ref.id, "--task", "report")

    for text in (followed, printed):
        assert "fetch#1 cloning repository" in text
        assert "report#1 writing report" in text
        assert text.index("cloning repository") < text.index("writing report")
    assert "writing report" in only_report and "cloning" not in only_report
    assert flows.roost.runs.get(ref.id).status == "SUCCEEDED"  # --follow returned at the end


def test_logs_are_paginated_over_http(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.chatty.run({"chunks": 1}, wait_for_result=False)
    ref.result(timeout=60)

    first, after = flows.roost.runs.logs(ref.id, limit=1)
    second, end = flows.roost.runs.logs(ref.id, after=after, limit=1)

    assert [line["message"] for line in first + second] == [
        "cloning repository",
        "writing report",
    ]
    assert after is not None
    with pytest.raises(roost.UnknownRunError):
        flows.roost.runs.logs("00000000-0000-0000-0000-000000000000")
