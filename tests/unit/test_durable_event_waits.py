"""``ctx.wait_for_event`` (roost._durable, roost._event_waits): a new wait suspends with
its journal entry and the EventWait the engine matches events against; a replay gets
the recorded event back, or WaitTimeoutError once the timeout passed with none; bad
arguments fail at the call. Then the attempt runner reporting it as TaskWaiting, through
a real Dramatiq event-loop thread. A fake clock; no broker, no engine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from dramatiq.asyncio import EventLoopThread, get_event_loop_thread, set_event_loop_thread
from durable_ctx import NOW, durable_ctx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError

import roost
from roost import (
    DurableContext,
    InvalidDefinitionError,
    NonDeterminismError,
    NonRetryableError,
    Roost,
    RoostError,
    WaitedEvent,
    WaitTimeoutError,
)
from roost._attempt import AttemptRunner
from roost._durable import WaitRequested
from roost._outcomes import Outcomes
from roost._reporter import Pending
from roost._spans import Spans
from roost_core import topology as topo
from roost_core.wire import DurableCall, EventWait, TaskWaiting

T = TypeVar("T")
# An event as the engine writes it into the wait's entry.
PUSHED = {
    "id": "ev-1",
    "key": "ci:done",
    "data": {"pr": 7, "ok": True},
    "created_at": "2023-11-14T22:13:25.5+00:00",
}


_ctx = durable_ctx


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def step(seq: int, name: str, result: Any) -> DurableCall:
    return DurableCall(seq=seq, kind="step", name=name, result=result)


def waiting(seq: int, key: str, until: float | None = None, result: Any = None) -> DurableCall:
    return DurableCall(seq=seq, kind="event", name=key, until=until, result=result)


def _suspended(ctx: DurableContext, coro: Coroutine[Any, Any, Any]) -> WaitRequested:
    with pytest.raises(WaitRequested) as waited:
        run(coro)
    return waited.value


# -- a new wait ---------------------------------------------------------------------------


def test_a_new_wait_suspends_with_its_entry_last_its_timeout_and_what_it_waits_for() -> None:
    ctx = _ctx([step(0, "open-pr", {"n": 7})])
    run(ctx.step("open-pr", lambda: None))
    run(ctx.step("comment", lambda: "done"))
    wait = _suspended(ctx, ctx.wait_for_event("ci:done", filter="payload.pr == 7", timeout="1h"))
    assert not isinstance(wait, Exception)  # a task's `except Exception` lets it through
    assert (wait.until, wait.reason) == (NOW + 3600, "event")
    assert wait.event == EventWait(key="ci:done", filter="payload.pr == 7", since=NOW)
    assert wait.journal == [
        step(0, "open-pr", {"n": 7}),
        step(1, "comment", "done"),
        waiting(2, "ci:done", until=NOW + 3600),  # no result: the engine writes the event
    ]
    assert "'land' waits (event 'ci:done') until 2023-11-14T23:13:20" in str(wait)


def test_a_wait_without_timeout_has_no_until_and_since_defaults_to_the_wait_itself() -> None:
    ctx = _ctx()
    wait = _suspended(ctx, ctx.wait_for_event("ci:done"))
    assert wait.until is None
    assert wait.event == EventWait(key="ci:done", filter=None, since=NOW)
    assert wait.journal == [waiting(0, "ci:done")]
    assert "waits (event 'ci:done') with no timeout" in str(wait)


def test_since_is_a_lookback_an_aware_datetime_or_unix_seconds() -> None:
    hour_ago = datetime.fromtimestamp(NOW - 3600, UTC)
    for since in (hour_ago, hour_ago.astimezone(), NOW - 3600, int(NOW) - 3600):
        ctx = _ctx()
        wait = _suspended(ctx, ctx.wait_for_event("ci:done", since=since, timeout=60))
        assert wait.event is not None and wait.event.since == NOW - 3600
        assert wait.until == NOW + 60  # the timeout runs from the wait, not from since
    with pytest.raises(ValueError, match="wait_for_event's since takes an aware datetime"):
        run(_ctx().wait_for_event("ci:done", since=datetime(2030, 1, 1)))
    with pytest.raises(TypeError, match="wait_for_event's since .*unix seconds, not '1h'"):
        run(_ctx().wait_for_event("ci:done", since="1h"))  # type: ignore[arg-type]


def test_timeouts_are_durations() -> None:
    for timeout in (90, 90.0, timedelta(seconds=90), "1m30s"):
        ctx = _ctx()
        assert _suspended(ctx, ctx.wait_for_event("k", timeout=timeout)).until == NOW + 90
    with pytest.raises(InvalidDefinitionError, match="wait_for_event 'k': timeout=0"):
        run(_ctx().wait_for_event("k", timeout=0))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"key": "ci done"}, ValueError, "wait_for_event: event key 'ci done' is invalid"),
        ({"key": ""}, ValueError, "event key '' is invalid"),
        ({"key": 7}, ValueError, "event key 7 is invalid"),
        (
            {"filter": "payload.pr =="},
            ValueError,
            r"filter 'payload.pr ==' is not valid CEL: Failed to parse",
        ),
        (
            {"filter": "input.pr == 7 && payload.ok"},
            ValueError,
            r"filter 'input.pr == 7 && payload.ok' uses input: only `payload`",
        ),
        ({"filter": "  "}, ValueError, "filter '  ' is empty"),
        ({"filter": 7}, TypeError, "filter is a CEL expression"),
    ],
)
def test_a_bad_key_or_filter_fails_at_the_call_naming_it_and_takes_no_number(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    ctx = _ctx()
    call = {"key": "ci:done", **kwargs}
    with pytest.raises(error, match=message):
        run(ctx.wait_for_event(call.pop("key"), **call))
    assert ctx.seq == 0 and ctx.durable_calls == []


def test_a_filter_may_be_any_cel_over_payload() -> None:
    ctx = _ctx()
    expression = 'payload.pr == 7 && payload.status in ["ok", "passed"] && size(payload) > 1'
    wait = _suspended(ctx, ctx.wait_for_event("ci:done", filter=expression))
    assert wait.event is not None and wait.event.filter == expression


# -- replays ------------------------------------------------------------------------------


def test_a_replayed_wait_with_an_event_returns_it_and_the_replay_goes_on() -> None:
    journal = [step(0, "open-pr", {"n": 7}), waiting(1, "ci:done", NOW + 10, PUSHED)]
    ctx = _ctx(journal, now=NOW + 5)
    run(ctx.step("open-pr", lambda: None))
    event = run(ctx.wait_for_event("ci:done", filter="payload.pr == 7", timeout="1h"))
    assert isinstance(event, WaitedEvent)
    assert event == WaitedEvent(
        id="ev-1",
        key="ci:done",
        data={"pr": 7, "ok": True},
        created_at=datetime(2023, 11, 14, 22, 13, 25, 500000, tzinfo=UTC),
    )
    assert event.payload is event.data
    event.data["pr"] = 8  # the task may change what it got; the record stays
    assert ctx.durable_calls[1].result == PUSHED
    assert run(ctx.step("merge", lambda: "merged")) == "merged"  # past the journal: runs
    assert [c.seq for c in ctx.durable_calls] == [0, 1, 2]
    ctx._check_returned()


def test_an_event_ends_a_wait_even_after_its_timeout() -> None:
    ctx = _ctx([waiting(0, "ci:done", NOW - 10, PUSHED)])  # the event came first
    assert run(ctx.wait_for_event("ci:done", timeout=5)).id == "ev-1"


def test_a_timed_out_wait_raises_wait_timeout_error_which_the_task_may_catch() -> None:
    async def land(ctx: DurableContext) -> list[Any]:
        seen: list[Any] = []
        try:
            seen.append(await ctx.wait_for_event("ci:done", timeout="10m"))
        except WaitTimeoutError as exc:
            seen.append(exc)
        seen.append(await ctx.step("after", lambda: "went on"))
        return seen

    journal = [waiting(0, "ci:done", until=NOW - 1)]
    for _ in range(2):  # and again on a later replay: the journal keeps the outcome
        ctx = _ctx(journal)
        timed_out, after = run(land(ctx))
        assert isinstance(timed_out, WaitTimeoutError)
        assert isinstance(timed_out, RoostError) and isinstance(timed_out, TimeoutError)
        assert isinstance(timed_out, NonRetryableError)  # a retry would time out again
        assert (timed_out.key, timed_out.until) == ("ci:done", NOW - 1)
        assert str(timed_out) == (
            "task 'land', durable call #0: wait_for_event 'ci:done' timed out at "
            "2023-11-14T22:13:19+00:00 with no event"
        )
        assert after == "went on"
        assert ctx.durable_calls == [journal[0], step(1, "after", "went on")]
        journal = ctx.durable_calls


def test_a_wait_resumed_before_its_event_or_timeout_suspends_again_with_the_same_entry() -> None:
    ctx = _ctx([step(0, "a", 1), waiting(1, "ci:done", until=NOW + 30)])
    run(ctx.step("a", lambda: None))
    wait = _suspended(ctx, ctx.wait_for_event("ci:done", filter="payload.ok", timeout=60))
    assert wait.until == NOW + 30  # the recorded timeout, not a new one
    assert wait.journal == [step(0, "a", 1), waiting(1, "ci:done", until=NOW + 30)]
    # Events from when the wait began (its timeout less the same timeout) still count.
    assert wait.event == EventWait(key="ci:done", filter="payload.ok", since=NOW - 30)

    lookback = _ctx([waiting(0, "k")])
    wait = _suspended(lookback, lookback.wait_for_event("k", since=NOW - 99))
    assert (wait.until, wait.event) == (None, EventWait(key="k", since=NOW - 99))
    no_timeout = _ctx([waiting(0, "k")])
    wait = _suspended(no_timeout, no_timeout.wait_for_event("k"))
    assert wait.event is not None and wait.event.since == NOW


@pytest.mark.parametrize(
    ("journal", "call", "message"),
    [
        (
            [step(0, "ci:done", 1)],
            lambda ctx: ctx.wait_for_event("ci:done"),
            "#0: the task recorded step 'ci:done' but now makes wait_for_event 'ci:done'",
        ),
        (
            [waiting(0, "ci:done")],
            lambda ctx: ctx.wait_for_event("ci:failed"),
            "#0: the task recorded wait_for_event 'ci:done' but now makes wait_for_event "
            "'ci:failed'",
        ),
        (
            [waiting(0, "ci:done", result=PUSHED)],
            lambda ctx: ctx.sleep_for(5),
            "#0: the task recorded wait_for_event 'ci:done' but now makes sleep",
        ),
    ],
)
def test_a_replay_that_makes_another_call_where_a_wait_was_fails_naming_both(
    journal: list[DurableCall], call: Any, message: str
) -> None:
    ctx = _ctx(journal)
    with pytest.raises(NonDeterminismError, match=message):
        run(call(ctx))


def test_a_replay_that_returns_before_its_recorded_wait_fails() -> None:
    ctx = _ctx([waiting(0, "ci:done", result=PUSHED)])
    with pytest.raises(NonDeterminismError, match="recorded wait_for_event 'ci:done' but now"):
        ctx._check_returned()


def test_a_recorded_result_that_is_not_an_event_is_refused() -> None:
    ctx = _ctx([waiting(0, "ci:done", result={"id": "x"})])
    with pytest.raises(ValidationError):
        run(ctx.wait_for_event("ci:done"))


def test_the_wait_surface_is_exported() -> None:
    assert {"WaitTimeoutError", "WaitedEvent"} <= set(roost.__all__)
    with pytest.raises(ValidationError):  # frozen: what the journal says it is
        WaitedEvent.model_validate(PUSHED).id = "other"  # type: ignore[misc]


# -- the attempt runner -------------------------------------------------------------------


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
def workflow() -> Any:
    wf = Roost(api_url="http://127.0.0.1:1", token="unused").workflow("wf")

    @wf.durable_task()
    async def land(input: dict, ctx: DurableContext) -> dict:
        pr = await ctx.step("open-pr", lambda: {"n": 7})
        try:
            ci = await ctx.wait_for_event(
                "ci:done", filter=f"payload.pr == {pr['n']}", timeout=input.get("timeout")
            )
        except WaitTimeoutError:
            return {"pr": pr["n"], "ci": None}
        except Exception:  # a task's own handler must not swallow the suspension
            return {"swallowed": True}
        return {"pr": pr["n"], "ci": ci.payload, "event": ci.id}

    return wf


def _execute(workflow: Any, reports: FakeReports, *spans: Spans, **message: Any) -> None:
    raw = {
        "run_id": "r1",
        "task_run_id": "tr1",
        "workflow": "wf",
        "task": "land",
        "attempt": 1,
        "input": {},
        **message,
    }
    outcomes = Outcomes(reports, reports)  # type: ignore[arg-type]
    runner = AttemptRunner(
        "w", {"wf": workflow}, lambda: "w@h:1", topo.Topology("test"), [*spans, outcomes]
    )
    runner.execute(raw)


def test_a_wait_is_reported_waiting_for_its_event_and_its_resume_gets_the_event(
    workflow: Any, loop_thread: EventLoopThread
) -> None:
    reports = FakeReports()
    _execute(workflow, reports)
    [(key, report)] = reports.results()
    assert key == topo.TASK_WAITING and isinstance(report, TaskWaiting)
    assert (report.reason, report.until) == ("event", None)
    assert report.event is not None
    assert (report.event.key, report.event.filter) == ("ci:done", "payload.pr == 7")
    assert report.started_at <= report.event.since <= report.finished_at
    assert report.journal == [
        DurableCall(seq=0, kind="step", name="open-pr", result={"n": 7}),
        DurableCall(seq=1, kind="event", name="ci:done"),
    ]
    # The wire round trip the engine makes, and its answer written into the entry.
    assert TaskWaiting.model_validate_json(report.model_dump_json()) == report
    answered = [c.model_dump(mode="json") for c in report.journal]
    answered[1]["result"] = PUSHED
    _execute(workflow, reports, attempt=2, journal=answered)
    [_, (key, succeeded)] = reports.results()
    assert key == topo.TASK_SUCCEEDED
    assert succeeded.output == {"pr": 7, "ci": {"pr": 7, "ok": True}, "event": "ev-1"}


def test_a_timed_out_wait_resumes_into_the_tasks_handler(
    workflow: Any, loop_thread: EventLoopThread
) -> None:
    reports = FakeReports()
    _execute(workflow, reports, input={"timeout": 60})
    [(_, report)] = reports.results()
    assert report.until is not None and report.until >= report.started_at + 60
    over = [c.model_dump(mode="json") for c in report.journal]
    over[1]["until"] = report.started_at - 1  # the engine's timer found it passed
    _execute(workflow, reports, input={"timeout": 60}, attempt=2, journal=over)
    [_, (key, succeeded)] = reports.results()
    assert (key, succeeded.output) == (topo.TASK_SUCCEEDED, {"pr": 7, "ci": None})


def test_a_waiting_attempts_span_names_the_event_and_copes_with_no_timeout(
    workflow: Any, loop_thread: EventLoopThread
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _execute(workflow, FakeReports(), Spans(provider.get_tracer("t")))
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes["roost.outcome"] == "waiting"
    [event] = span.events
    assert event.name == "waiting" and event.attributes is not None
    assert dict(event.attributes) == {"roost.reason": "event", "roost.event_key": "ci:done"}
