"""Durable tasks on the worker (issue #18): ``@wf.durable_task`` declarations, and the
attempt runner turning a suspension into a TaskWaiting report, through a real Dramatiq
event-loop thread (WaitRequested, a BaseException, must come out of it intact). No
broker: reports go to an in-memory fake."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq.asyncio import EventLoopThread, get_event_loop_thread, set_event_loop_thread
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from roost import Context, DurableContext, InvalidDefinitionError, Roost
from roost._attempt import AttemptRunner
from roost._cancellation import Cancellation
from roost._deadlines import Deadlines
from roost._middleware import AttemptMiddleware
from roost._outcomes import Outcomes
from roost._reporter import Pending
from roost._spans import Spans
from roost_core import topology as topo
from roost_core.wire import DurableCall, TaskDefinition, TaskWaiting


class FakeReports:
    """AttemptReports and the Reporter's `schedule`, in memory."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def result(self, key: str, report: Any) -> None:
        self.sent.append((key, report))

    def started_now(self, started: Any) -> None:
        self.sent.append(("started_now", started))

    def emit(self, *args: Any) -> None:
        self.sent.append(("emitted", args[-2:]))

    def schedule(self, message: Any) -> Pending:
        return Pending()

    def results(self) -> list[tuple[str, Any]]:
        return [(k, r) for k, r in self.sent if k.startswith("task.")]


class FakeControl:
    def __init__(self) -> None:
        self.running: set[str] = set()

    def begin(self, task_run_id: str, ctx: Context) -> bool:
        self.running.add(task_run_id)
        return True

    def end(self, task_run_id: str) -> None:
        self.running.discard(task_run_id)


@pytest.fixture
def loop_thread() -> Iterator[EventLoopThread]:
    """Dramatiq's event-loop thread, as its AsyncIO middleware installs it."""
    previous = get_event_loop_thread()
    thread = EventLoopThread(logging.getLogger("test.loop"))
    thread.start(timeout=5)
    set_event_loop_thread(thread)
    yield thread
    set_event_loop_thread(previous)
    thread.stop()


@pytest.fixture
def effects() -> list[str]:
    return []


@pytest.fixture
def workflow(effects: list[str]) -> Any:
    wf = Roost(api_url="http://127.0.0.1:1", token="unused").workflow("wf")

    def open_pr(branch: str) -> dict[str, Any]:
        effects.append(f"open-pr {branch}")
        return {"n": 12}

    @wf.durable_task(retries=2)
    async def land(input: dict, ctx: DurableContext) -> dict:
        effects.append(type(ctx).__name__)
        pr = await ctx.step("open-pr", open_pr, input["branch"])
        try:
            await ctx.sleep_for("10m")
        except Exception:  # a task's own handler must not swallow the suspension
            effects.append("swallowed")
        return {"pr": pr["n"]}

    @wf.durable_task()
    async def changed(input: dict, ctx: DurableContext) -> None:
        await ctx.sleep_for(5)  # its journal says it opened a PR first

    @wf.task()
    def plain(input: dict, ctx: Context) -> str:
        return type(ctx).__name__

    return wf


def _runner(workflow: Any, *middlewares: AttemptMiddleware) -> AttemptRunner:
    return AttemptRunner(
        "w", {"wf": workflow}, lambda: "w@h:1", topo.Topology("test"), list(middlewares)
    )


def _message(task: str, attempt: int = 1, journal: list[DurableCall] | None = None) -> Any:
    return {
        "run_id": "r1",
        "task_run_id": "tr1",
        "workflow": "wf",
        "task": task,
        "attempt": attempt,
        "input": {"branch": "main"},
        "journal": [c.model_dump(mode="json") for c in journal or []],
    }


def test_a_durable_task_is_declared_as_a_task_is_and_marked_durable() -> None:
    wf = Roost(api_url="http://127.0.0.1:1", token="unused").workflow("wf")

    @wf.task()
    def first(input: dict, ctx: Context) -> None: ...

    @wf.durable_task("landing", parents=[first], retries=3, execution_timeout="2d")
    async def land(input: dict, ctx: DurableContext) -> None: ...

    assert land.durable and not first.durable
    assert wf.tasks["landing"] is land and land.is_async
    assert land.definition() == TaskDefinition(
        name="landing", parents=["first"], retries=3, execution_timeout_seconds=172800.0
    )


def test_a_sync_durable_task_is_refused_naming_it() -> None:
    wf = Roost(api_url="http://127.0.0.1:1", token="unused").workflow("wf")
    with pytest.raises(InvalidDefinitionError, match="durable task 'land' of workflow 'wf'.*async"):

        @wf.durable_task()
        def land(input: dict, ctx: DurableContext) -> None: ...

    with pytest.raises(InvalidDefinitionError, match="durable task 'named'"):
        wf.durable_task("named")(lambda input, ctx: None)
    assert wf.tasks == {}  # nothing half-declared


def test_a_suspended_attempt_is_reported_waiting_and_its_resume_replays_the_step(
    workflow: Any, effects: list[str], loop_thread: EventLoopThread
) -> None:
    reports, control = FakeReports(), FakeControl()
    outcomes = Outcomes(reports, reports)  # type: ignore[arg-type]
    runner = _runner(workflow, Deadlines(), outcomes, Cancellation(control))  # type: ignore[arg-type]
    before = time.time()
    runner.execute(_message("land"))
    assert effects == ["DurableContext", "open-pr main"]  # and not "swallowed"
    [(key, waiting)] = reports.results()
    assert key == topo.TASK_WAITING and isinstance(waiting, TaskWaiting)
    assert (waiting.task_run_id, waiting.attempt, waiting.reason) == ("tr1", 1, "sleep")
    assert before + 600 <= waiting.until <= time.time() + 600
    assert waiting.journal == [
        DurableCall(seq=0, kind="step", name="open-pr", result={"n": 12}),
        DurableCall(seq=1, kind="sleep", name="sleep", until=waiting.until),
    ]
    assert control.running == set()  # the attempt ended: its slot is free

    # The engine's resume, once the sleep is over: the step is not run again.
    effects.clear()
    over = [c.model_copy(update={"until": before - 1}) if c.until else c for c in waiting.journal]
    runner.execute(_message("land", attempt=2, journal=over[::-1]))  # in any order
    assert effects == ["DurableContext"]
    [_, (key, succeeded)] = reports.results()
    assert (key, succeeded.attempt, succeeded.output) == (topo.TASK_SUCCEEDED, 2, {"pr": 12})


def test_a_replay_that_diverges_fails_the_attempt_at_once_naming_the_call(
    workflow: Any, loop_thread: EventLoopThread
) -> None:
    reports = FakeReports()
    runner = _runner(workflow, Outcomes(reports, reports))  # type: ignore[arg-type]
    journal = [DurableCall(seq=0, kind="step", name="open-pr", result={"n": 1})]
    runner.execute(_message("changed", attempt=2, journal=journal))
    [(key, failed)] = reports.results()
    assert key == topo.TASK_FAILED and not failed.retryable
    assert failed.error.type == "NonDeterminismError"
    assert "durable call #0: the task recorded step 'open-pr' but now makes sleep" in (
        failed.error.message
    )


def test_an_ordinary_task_still_gets_a_plain_context(
    workflow: Any, loop_thread: EventLoopThread
) -> None:
    reports = FakeReports()
    _runner(workflow, Outcomes(reports, reports)).execute(_message("plain"))  # type: ignore[arg-type]
    [(_, succeeded)] = reports.results()
    assert succeeded.output == "Context"


def test_a_waiting_attempts_span_ends_ok_with_a_waiting_event(
    workflow: Any, loop_thread: EventLoopThread
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reports = FakeReports()
    outcomes = Outcomes(reports, reports)  # type: ignore[arg-type]
    _runner(workflow, Spans(provider.get_tracer("t")), outcomes).execute(_message("land"))
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is not StatusCode.ERROR
    assert span.attributes is not None and span.attributes["roost.outcome"] == "waiting"
    [event] = span.events
    assert event.name == "waiting" and event.attributes is not None
    assert event.attributes["roost.reason"] == "sleep"
