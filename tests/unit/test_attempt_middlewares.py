"""The attempt middlewares the worker composes (roost._middleware): each, removed from
the list, makes its test here fail. No broker: reports go to an in-memory fake."""

from __future__ import annotations

import time
from typing import Any

import pytest
from dramatiq.middleware.time_limit import TimeLimitExceeded
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from roost import Context, NonRetryableError, Roost
from roost._attempt import AttemptRunner
from roost._cancellation import Cancellation
from roost._deadlines import Deadlines, engine_watches, too_late
from roost._delivery import Delivery, LongTasks
from roost._errors import InvalidDefinitionError, TaskCancelledError
from roost._middleware import AttemptMiddleware
from roost._outcomes import Outcomes
from roost._reporter import Pending
from roost._reports import ReportUndelivered
from roost._spans import Spans
from roost_core import topology as topo
from roost_core.wire import TaskMessage


class FakeReports:
    """AttemptReports and the Reporter's `schedule`, in memory."""

    def __init__(self, fail_results: bool = False) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.scheduled: list[Pending] = []
        self.fail_results = fail_results

    def result(self, key: str, report: Any) -> None:
        if self.fail_results:
            raise ReportUndelivered(f"{report.task_run_id}:{report.attempt}")
        self.sent.append((key, report))

    def started_now(self, started: Any) -> None:
        self.sent.append(("started_now", started))

    def emit(self, msg: TaskMessage, started_at: float, type: str, data: Any) -> None:
        self.sent.append(("emitted", (type, data)))

    def schedule(self, message: Any) -> Pending:
        pending = Pending()
        self.scheduled.append(pending)
        return pending

    def keys(self) -> list[str]:
        return [key for key, _ in self.sent]


def _message(task: str, **fields: Any) -> dict[str, Any]:
    base = {"run_id": "r1", "task_run_id": "tr1", "workflow": "wf", "task": task}
    return {**base, "attempt": 1, "input": {}, **fields}


class FakeControl:
    def __init__(self, cancelled: set[str] | None = None) -> None:
        self.cancelled = cancelled or set()
        self.running: set[str] = set()

    def begin(self, task_run_id: str, ctx: Context) -> bool:
        if task_run_id in self.cancelled:
            return False
        self.running.add(task_run_id)
        return True

    def end(self, task_run_id: str) -> None:
        self.running.discard(task_run_id)


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def workflow(calls: list[str]) -> Any:
    wf = Roost(api_url="http://127.0.0.1:1", token="unused").workflow("wf")

    @wf.task()
    def ok(input: dict, ctx: Context) -> dict:
        calls.append("ok")
        ctx.log("hello")
        return {"n": 1}

    @wf.task()
    def boom(input: dict, ctx: Context) -> None:
        raise NonRetryableError("bad input 7")

    @wf.task()
    def slow(input: dict, ctx: Context) -> None:
        raise TimeLimitExceeded()  # as Dramatiq's TimeLimit does in the task's thread

    @wf.task()
    def interrupted(input: dict, ctx: Context) -> None:
        raise TaskCancelledError()

    return wf


def _runner(workflow: Any, *middlewares: AttemptMiddleware) -> AttemptRunner:
    return AttemptRunner(
        "w", {"wf": workflow}, lambda: "w@h:1", topo.Topology("test"), list(middlewares)
    )


def test_an_attempt_too_late_to_start_fails_as_a_schedule_timeout_without_running(
    workflow: Any, calls: list[str]
) -> None:
    reports = FakeReports()
    runner = _runner(workflow, Deadlines(), Outcomes(reports, reports))  # type: ignore[arg-type]
    runner.execute(_message("ok", schedule_deadline=time.time() - 1))
    assert calls == []
    [(key, failed)] = reports.sent
    assert key == topo.TASK_FAILED
    assert (failed.error.type, failed.retryable, failed.timed_out) == (
        "ScheduleTimeout",
        False,
        True,
    )


def test_an_attempt_interrupted_by_its_time_limit_fails_as_a_retryable_execution_timeout(
    workflow: Any,
) -> None:
    reports = FakeReports()
    runner = _runner(workflow, Deadlines(), Outcomes(reports, reports))  # type: ignore[arg-type]
    runner.execute(_message("slow", execution_timeout=2.5))
    assert reports.keys() == ["started_now", topo.TASK_FAILED]
    failed = reports.sent[1][1]
    assert (failed.error.type, failed.retryable, failed.timed_out) == (
        "ExecutionTimeout",
        True,
        True,
    )
    assert "of 2.5 s" in failed.error.message


def test_an_attempt_with_no_deadline_reports_started_late_and_withdraws_it_once_done(
    workflow: Any, calls: list[str]
) -> None:
    reports = FakeReports()
    runner = _runner(workflow, Deadlines(), Outcomes(reports, reports))  # type: ignore[arg-type]
    runner.execute(_message("ok"))
    assert calls == ["ok"]
    assert reports.keys() == ["emitted", topo.TASK_SUCCEEDED]
    assert reports.sent[1][1].output == {"n": 1}
    [pending] = reports.scheduled
    assert pending.cancelled


def test_a_task_failure_is_reported_not_raised_and_non_retryable_errors_say_so(
    workflow: Any,
) -> None:
    reports = FakeReports()
    runner = _runner(workflow, Deadlines(), Outcomes(reports, reports))  # type: ignore[arg-type]
    runner.execute(_message("boom"))
    [(key, failed)] = reports.sent
    assert key == topo.TASK_FAILED
    assert (failed.error.type, failed.error.message) == ("NonRetryableError", "bad input 7")
    assert not failed.retryable and not failed.timed_out
    assert "bad input 7" in (failed.error.traceback or "")


def test_a_cancelled_attempt_never_starts_and_an_interrupted_one_reports_nothing(
    workflow: Any, calls: list[str]
) -> None:
    reports = FakeReports()
    control = FakeControl(cancelled={"tr1"})
    outcomes = Outcomes(reports, reports)  # type: ignore[arg-type]
    runner = _runner(workflow, Deadlines(), outcomes, Cancellation(control))  # type: ignore[arg-type]
    runner.execute(_message("ok"))
    assert calls == [] and reports.sent == []
    assert all(p.cancelled for p in reports.scheduled)

    control.cancelled.clear()
    runner.execute(_message("interrupted"))
    assert reports.sent == [] and control.running == set()


def test_the_attempts_span_records_its_failure_and_a_report_that_could_not_go_out(
    workflow: Any,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reports = FakeReports(fail_results=True)
    outcomes = Outcomes(reports, reports)  # type: ignore[arg-type]
    runner = _runner(workflow, Deadlines(), Spans(provider.get_tracer("t")), outcomes)
    with pytest.raises(ReportUndelivered):
        runner.execute(_message("slow", execution_timeout=1))
    [span] = exporter.get_finished_spans()
    assert span.name == "task wf.slow"
    assert span.attributes is not None
    assert (span.attributes["roost.outcome"], span.attributes["roost.run_id"]) == (
        "timed_out",
        "r1",
    )
    assert span.status.status_code is StatusCode.ERROR
    recorded = [str(e.attributes["exception.type"]) for e in span.events if e.attributes]
    assert [t.rsplit(".", 1)[-1] for t in recorded] == ["TimeLimitExceeded", "ReportUndelivered"]


def test_an_attempt_is_watched_for_a_long_task_ack_while_it_runs_and_reports(
    workflow: Any,
) -> None:
    delivery = Delivery()
    seen: list[list[str]] = []

    class Spy(FakeReports):
        def result(self, key: str, report: Any) -> None:
            seen.append([m for _, m, _ in delivery.long_running(0)])

    reports = Spy()
    runner = _runner(workflow, LongTasks(delivery), Outcomes(reports, reports))  # type: ignore[arg-type]
    runner.execute(_message("ok"))
    assert seen == [["tr1:1"]]
    assert delivery.long_running(0) == []


def test_deadlines_are_pure_functions_of_the_message() -> None:
    msg = TaskMessage.model_validate(_message("ok", schedule_deadline=100.0))
    assert too_late(msg, 100.5) and not too_late(msg, 99.0)
    assert engine_watches(msg)
    plain = TaskMessage.model_validate(_message("ok"))
    assert not too_late(plain, 1e12) and not engine_watches(plain)
    assert engine_watches(TaskMessage.model_validate(_message("ok", execution_timeout=3)))


def test_the_worker_composes_every_attempt_middleware() -> None:
    # Guards the list in Worker.setup_broker against a concern dropped by mistake.
    import inspect

    from roost import _worker

    source = inspect.getsource(_worker.Worker.setup_broker)
    for name in ("Deadlines(", "LongTasks(", "Spans(", "Outcomes(", "Cancellation("):
        assert name in source


def test_refresh_timeout_moves_the_worker_limit_and_tells_the_engine() -> None:
    sent: list[tuple[str, object]] = []
    extended: list[float] = []
    msg = TaskMessage(
        run_id="r",
        task_run_id="t",
        workflow="wf",
        task="a",
        attempt=1,
        input={},
        execution_timeout=1.0,
    )
    ctx = Context(msg, "w", lambda type, data: sent.append((type, data)))
    ctx._extend = extended.append
    before = time.time()
    ctx.refresh_timeout("10m")
    assert extended == [600.0]
    ((kind, data),) = sent
    assert kind == "deadline" and isinstance(data, dict) and data["seconds"] == 600.0
    assert before + 600 <= data["deadline"] <= time.time() + 600
    with pytest.raises(InvalidDefinitionError, match="refresh_timeout"):
        ctx.refresh_timeout("soon")
    untimed = Context(msg.model_copy(update={"execution_timeout": None}), "w")
    with pytest.raises(ValueError, match="no execution_timeout"):
        untimed.refresh_timeout(5)
