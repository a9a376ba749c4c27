"""Roost's own span store: with no OTLP endpoint configured at all, a run's trace is
stored in PostgreSQL and served by ``GET /api/v1/runs/{id}/trace``, ``roost runs trace``
and, as spans end, the run's SSE stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness import Process, Stack

WORKFLOW = "t-stored"


@pytest.fixture(scope="module")
def stored_worker(stack: Stack) -> Iterator[Process]:
    assert not any(k.startswith("OTEL_") for k in stack.env), "no collector in this test"
    proc = stack.start_worker("roost_testapps.flows:stored_worker", threads=4, name="stored")
    yield proc
    proc.stop()


def _headers(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}"}


def _trigger(stack: Stack, linger: float = 0.0) -> str:
    resp = httpx.post(
        f"{stack.api_url}/api/v1/workflows/{WORKFLOW}/runs",
        json={"input": {"linger": linger}},
        headers=_headers(stack),
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    run_id: str = resp.json()["id"]
    return run_id


def _complete_trace(stack: Stack, run_id: str, timeout: float = 30) -> dict[str, Any]:
    """The run's trace once it holds the run's completion and every attempt's span."""
    deadline = time.monotonic() + timeout
    while True:
        resp = httpx.get(
            f"{stack.api_url}/api/v1/runs/{run_id}/trace", headers=_headers(stack), timeout=10
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        names = [s["name"] for s in body["spans"]]
        if (
            f"complete {WORKFLOW}" in names
            and names.count(f"task {WORKFLOW}.left") == 2
            and all(f"task {WORKFLOW}.{t}" in names for t in ("fetch", "right", "merge"))
        ):
            return body
        assert time.monotonic() < deadline, f"trace incomplete: {names}"
        time.sleep(0.2)


def test_a_runs_trace_is_stored_and_served_with_no_collector(
    stack: Stack, stored_worker: Process
) -> None:
    run_id = _trigger(stack)
    body = _complete_trace(stack, run_id)
    assert body["run_id"] == run_id and body["status"] == "SUCCEEDED"
    spans = body["spans"]
    # One trace: every span of the run carries its trace id.
    assert body["trace_id"] and {s["trace_id"] for s in spans} == {body["trace_id"]}
    assert all(s["run_id"] == run_id for s in spans)
    assert [s["start"] for s in spans] == sorted(s["start"] for s in spans)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        by_name.setdefault(s["name"], []).append(s)

    (trigger,) = by_name[f"trigger {WORKFLOW}"]
    (run,) = by_name[f"run {WORKFLOW}"]
    assert trigger["service"] == "roost-api" and trigger["parent_span_id"] is None
    assert run["parent_span_id"] == trigger["span_id"]
    # api -> scheduler -> worker, every task, each parented on the run's span.
    for task in ("fetch", "left", "right", "merge"):
        for attempt in by_name[f"task {WORKFLOW}.{task}"]:
            assert attempt["parent_span_id"] == run["span_id"]
            assert attempt["service"] == "roost-worker"
            assert attempt["attributes"]["roost.task"] == task
            assert attempt["attributes"]["roost.worker_id"]
            assert attempt["end"] >= attempt["start"]
        # Each attempt's queue wait (queued -> started), beside its execution.
        waits = by_name[f"queue {task}"]
        assert len(waits) == len(by_name[f"task {WORKFLOW}.{task}"])
        assert all(w["parent_span_id"] == run["span_id"] for w in waits)
        assert all(w["attributes"]["roost.queue_wait_seconds"] >= 0 for w in waits)
    # The retried task: one span per attempt, the first with its error recorded.
    lefts = sorted(by_name[f"task {WORKFLOW}.left"], key=lambda s: s["attributes"]["roost.attempt"])
    assert [s["attributes"]["roost.attempt"] for s in lefts] == [1, 2]
    assert lefts[0]["status"] == "error" and lefts[1]["status"] != "error"
    (exception,) = [e for e in lefts[0]["events"] if e["name"] == "exception"]
    assert exception["attributes"]["exception.type"] == "ValueError"
    assert "left fails once" in exception["attributes"]["exception.message"]
    # User spans inside tasks (sync and async) are children of their attempt's span.
    (user_fetch,) = by_name["user.fetch"]
    assert user_fetch["parent_span_id"] == by_name[f"task {WORKFLOW}.fetch"][0]["span_id"]
    (user_prepare,) = by_name["user.prepare"]
    assert user_prepare["parent_span_id"] == by_name[f"task {WORKFLOW}.right"][0]["span_id"]
    # The scheduler's decisions and the run's completion.
    (complete,) = by_name[f"complete {WORKFLOW}"]
    assert complete["service"] == "roost-scheduler"
    assert complete["attributes"]["roost.run_status"] == "SUCCEEDED"
    assert all(s["service"] == "roost-scheduler" for s in by_name[f"schedule {WORKFLOW}"])
    # The same spans in the database, once each.
    (stored,) = stack.sql("SELECT count(*) FROM spans WHERE run_id = %s", run_id)
    assert stored[0] == len(spans)


def test_roost_runs_trace_prints_the_same_spans_as_a_waterfall(
    stack: Stack, stored_worker: Process
) -> None:
    run_id = _trigger(stack)
    body = _complete_trace(stack, run_id)
    text = stack.roost("runs", "trace", run_id)
    assert run_id in text and "SUCCEEDED" in text
    lines = text.splitlines()

    def line_of(name: str) -> str:
        found = [line for line in lines if name in line]
        assert found, f"{name!r} missing from:\n{text}"
        return found[0]

    def indent(name: str) -> int:
        line = line_of(name)
        return line.index(name)

    for span in body["spans"]:
        line_of(span["name"])  # every stored span has its line
    assert sum(f"task {WORKFLOW}.left" in line for line in lines) == 2
    # Indented by parent: trigger > run > task > the user's span inside it.
    assert indent(f"trigger {WORKFLOW}") < indent(f"run {WORKFLOW}")
    assert indent(f"run {WORKFLOW}") < indent(f"task {WORKFLOW}.fetch")
    assert indent(f"task {WORKFLOW}.fetch") < indent("user.fetch")
    assert "ValueError" in text  # the failed attempt's error
    assert " ms" in line_of(f"task {WORKFLOW}.merge") or " s" in line_of(f"task {WORKFLOW}.merge")
    as_json = json.loads(stack.roost("runs", "trace", run_id, "--json"))
    assert {s["span_id"] for s in as_json["spans"]} == {s["span_id"] for s in body["spans"]}


def test_spans_stream_live_on_the_runs_sse_stream_as_they_end(
    stack: Stack, stored_worker: Process
) -> None:
    run_id = _trigger(stack, linger=2.0)
    received: list[tuple[str, str | None, dict[str, Any]]] = []
    with httpx.stream(
        "GET",
        f"{stack.gateway_url}/api/v1/runs/{run_id}/events",
        params={"types": "span,run.*"},
        headers=_headers(stack),
        timeout=httpx.Timeout(30, read=30),
    ) as resp:
        assert resp.status_code == 200
        event: str | None = None
        event_id: str | None = None
        for line in resp.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("id:"):
                event_id = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event:
                received.append((event, event_id, json.loads(line.split(":", 1)[1])))
            elif not line:
                if received and received[-1][0] == "run.succeeded":
                    break
                event = event_id = None
    kinds = [k for k, _, _ in received]
    assert kinds[-1] == "run.succeeded"
    live = [data for kind, _, data in received if kind == "span"]
    # Spans that ended while the run went on came before its end: the stored ones first,
    # then each as it was stored (right's user span, 2 s before the run's end).
    names = [s["name"] for s in live]
    for name in (f"task {WORKFLOW}.fetch", "user.fetch", "user.prepare"):
        assert names.count(name) == 1, names
    assert all(s["run_id"] == run_id and s["span_id"] for s in live)
    # Spans carry no event id: they never move a client's Last-Event-ID.
    assert all(event_id is None for kind, event_id, _ in received if kind == "span")
    # Each streamed span is also in the stored trace.
    stored = {s["span_id"] for s in _complete_trace(stack, run_id)["spans"]}
    assert {s["span_id"] for s in live} <= stored


def test_the_trace_of_an_unknown_run_is_a_404_naming_it(stack: Stack) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    resp = httpx.get(
        f"{stack.api_url}/api/v1/runs/{missing}/trace", headers=_headers(stack), timeout=10
    )
    assert resp.status_code == 404 and missing in resp.json()["error"]["message"]
    bad = httpx.get(
        f"{stack.api_url}/api/v1/runs/not-a-run/trace", headers=_headers(stack), timeout=10
    )
    assert bad.status_code in (400, 404) and "not-a-run" in bad.json()["error"]["message"]


def test_a_finished_runs_stream_of_spans_sends_every_stored_span_then_ends(
    stack: Stack, stored_worker: Process
) -> None:
    run_id = _trigger(stack)
    stored = _complete_trace(stack, run_id)["spans"]
    with httpx.stream(
        "GET",
        f"{stack.gateway_url}/api/v1/runs/{run_id}/events",
        params={"types": "span"},
        headers=_headers(stack),
        timeout=httpx.Timeout(30, read=30),
    ) as resp:
        assert resp.status_code == 200
        spans = [
            json.loads(line.split(":", 1)[1])
            for line in resp.iter_lines()
            if line.startswith("data:")
        ]
    # Only spans (asked for nothing else), each stored one once, and the stream ended.
    assert sorted(s["span_id"] for s in spans) == sorted(s["span_id"] for s in stored)
