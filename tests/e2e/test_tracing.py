"""One OpenTelemetry trace per run across processes: the api's trigger and run spans, each
task attempt's span on its worker, and user spans inside tasks, exported over OTLP/HTTP
to a receiver this test runs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from harness import Stack, free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent: str
    name: str
    attributes: dict[str, Any]
    error: bool
    events: list[str]
    service: str


@dataclass
class Receiver:
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, check: Any, timeout: float = 20) -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                spans = list(self.spans)
            if check(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.1)


def _value(value: Any) -> Any:
    """An OTLP AnyValue as Python: strings, numbers, booleans and arrays of them."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _serve(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            found = []
            for rs in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in rs.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        attrs = {a.key: _value(a.value) for a in s.attributes}
                        found.append(
                            Span(
                                s.trace_id.hex(),
                                s.span_id.hex(),
                                s.parent_span_id.hex(),
                                s.name,
                                attrs,
                                s.status.code == 2,
                                [e.name for e in s.events],
                                service,
                            )
                        )
            with receiver.lock:
                receiver.spans.extend(found)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def traced_stack(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Receiver]]:
    """A stack of its own whose every process exports to this test's OTLP receiver (the
    session's ``stack`` fixture is asked for only to check that the servers are up)."""
    receiver = Receiver()
    server = _serve(receiver)
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    traced = Stack(Path(tmp_path_factory.mktemp("traced")), extra_env=otel)
    try:
        traced.start()
        put = httpx.put(
            f"{traced.api_url}/api/v1/rate-limits/traced-sessions",
            json={"limit": 2},
            headers={"Authorization": f"Bearer {traced.token}"},
            timeout=10,
        )
        assert put.status_code == 200, put.text
        traced.start_worker(
            "roost_testapps.flows:tracer_worker",
            threads=4,
            name="traced",
            extra_env={"ROOST_LOG_FORMAT": "json"},
        )
        yield traced, receiver
    finally:
        traced.stop()
        server.shutdown()


def _trigger(stack: Stack, traceparent: str | None) -> str:
    headers = {"Authorization": f"Bearer {stack.token}"}
    if traceparent is not None:
        headers["traceparent"] = traceparent
    resp = httpx.post(
        f"{stack.api_url}/api/v1/workflows/t-traced/runs",
        json={"input": {}},
        headers=headers,
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    run_id: str = resp.json()["id"]
    deadline = time.monotonic() + 60
    while True:
        got = httpx.get(f"{stack.api_url}/api/v1/runs/{run_id}", headers=headers, timeout=10)
        if got.json()["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            assert got.json()["status"] == "SUCCEEDED"
            return run_id
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_run_is_one_trace_from_the_callers_span_to_user_spans_in_its_tasks(
    traced_stack: tuple[Stack, Receiver],
) -> None:
    stack, receiver = traced_stack
    run_id = _trigger(stack, f"00-{TRACE_ID}-{CALLER_SPAN}-01")

    def complete(spans: list[Span]) -> bool:
        mine = [s for s in spans if s.trace_id == TRACE_ID]
        done = any(s.name == "complete t-traced" for s in mine)
        return done and sum(1 for s in mine if s.name.startswith("user.")) >= 3

    spans = [s for s in receiver.wait(complete) if s.trace_id == TRACE_ID]
    by_name: dict[str, list[Span]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)

    (trigger,) = by_name["trigger t-traced"]
    (run,) = by_name["run t-traced"]
    # The caller's traceparent is the root's parent: the api's server span (OpenTelemetry's
    # Starlette instrumentation), with the trigger under it.
    (server,) = [s for s in spans if s.span_id == trigger.parent]
    assert server.parent == CALLER_SPAN and server.service == "roost-api"
    assert server.name.startswith("POST /api/v1/workflows/")
    assert trigger.service == "roost-api"
    # The api's SQL statements, as client spans in the same trace (psycopg instrumentation).
    statements = [s for s in spans if s.attributes.get("db.system") == "postgresql"]
    assert statements and all(s.service == "roost-api" for s in statements)
    assert run.parent == trigger.span_id and run.attributes["roost.run_id"] == run_id
    (clone,) = by_name["task t-traced.clone"]
    thinks = sorted(by_name["task t-traced.think"], key=lambda s: s.attributes["roost.attempt"])
    assert [s.attributes["roost.attempt"] for s in thinks] == [1, 2]  # a span per attempt
    for task in (clone, *thinks):
        assert task.parent == run.span_id
        assert task.service == "roost-worker"
        assert task.attributes["roost.run_id"] == run_id
    assert thinks[0].error and "exception" in thinks[0].events  # the error is recorded
    assert not thinks[1].error
    (user_clone,) = by_name["user.clone"]
    assert user_clone.parent == clone.span_id  # a user span in a sync task: its child
    user_thinks = by_name["user.think"]
    assert sorted(s.parent for s in user_thinks) == sorted(s.span_id for s in thinks)  # async
    # The ratelimiter's admission of the rate-limited task, with the time it waited.
    (admit,) = by_name["admit clone"]
    assert admit.parent == run.span_id and admit.service == "roost-ratelimiter"
    assert float(admit.attributes["roost.waited_seconds"]) >= 0
    # The scheduler's decisions, each in the run's trace.
    (complete,) = by_name["complete t-traced"]  # the run's completion
    assert complete.attributes["roost.run_status"] == "SUCCEEDED"
    decisions = [*by_name["schedule t-traced"], complete]
    assert all(d.parent == run.span_id and d.service == "roost-scheduler" for d in decisions)
    decided = [t for d in decisions for t in d.attributes["roost.events"]]
    assert "task.retrying" in decided and "run.succeeded" in decided
    # Each attempt's queue wait, from queued to started, beside its execution.
    waits = by_name["queue think"]
    assert [
        w.attributes["roost.attempt"]
        for w in sorted(waits, key=lambda w: w.attributes["roost.attempt"])
    ] == [1, 2]
    assert all(
        w.parent == run.span_id and w.attributes["roost.queue_wait_seconds"] >= 0 for w in waits
    )
    # The worker's log line about the failed attempt leads to that attempt's span.
    (worker,) = [p for p in stack.processes if p.name == "traced"]
    lines = [json.loads(line) for line in worker.log.read_text().splitlines() if line.strip()]
    (failed,) = [
        line
        for line in lines
        if line.get("run_id") == run_id and line.get("action") == "task_failed"
    ]
    assert failed["trace_id"] == TRACE_ID and failed["span_id"] == thinks[0].span_id


def test_a_malformed_traceparent_is_ignored_and_the_run_gets_a_fresh_trace(
    traced_stack: tuple[Stack, Receiver],
) -> None:
    stack, receiver = traced_stack
    run_id = _trigger(stack, "00-not-a-trace-context")

    def has_run(spans: list[Span]) -> bool:
        return any(s.attributes.get("roost.run_id") == run_id for s in spans)

    spans = receiver.wait(has_run)
    (run,) = [
        s for s in spans if s.name == "run t-traced" and s.attributes["roost.run_id"] == run_id
    ]
    assert run.trace_id not in (TRACE_ID, "0" * 32)
    tasks = [s for s in spans if s.trace_id == run.trace_id and s.name.startswith("task ")]
    assert tasks  # its tasks joined the fresh trace
