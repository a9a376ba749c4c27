"""Running one task attempt on a worker thread: check it may still start, say it
started, run the task function (sync, or async on Dramatiq's event-loop thread) inside
the attempt's span, and report how it ended. A task's own failure is reported, never
raised to Dramatiq; the engine applies the task's retry policy."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware.time_limit import TimeLimitExceeded
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import BaseModel, ValidationError

from roost._context import Context
from roost._control import ControlListener
from roost._delivery import Delivery
from roost._errors import NonRetryableError, TaskCancelledError
from roost._heartbeats import Heartbeats
from roost._reporter import Pending
from roost._reports import AttemptReports
from roost._workflow import Task, Workflow
from roost_core import topology as topo
from roost_core import tracing
from roost_core.outbox import OutboxMessage
from roost_core.wire import TaskError, TaskFailed, TaskMessage, TaskStarted, TaskSucceeded

logger = logging.getLogger("roost.worker")
_tracer = tracing.tracer("roost.worker")


class AttemptRunner:
    """Runs the attempts of one worker process's workflows."""

    def __init__(
        self,
        name: str,
        workflows: dict[str, Workflow],
        worker_id: Callable[[], str],
        topology: topo.Topology,
        reports: AttemptReports,
        heartbeats: Heartbeats,
        delivery: Delivery,
        control: ControlListener | None,
    ) -> None:
        self._name = name
        self._workflows = workflows
        self._worker_id = worker_id
        self._topology = topology
        self._reports = reports
        self._heartbeats = heartbeats
        self._delivery = delivery
        self._control = control

    def execute(self, raw: dict[str, Any]) -> None:
        """Run one task attempt and report its outcome. Raises ReportUndelivered only
        when its result could not be published (its message then goes back to the
        queue), and TaskCancelledError when a cancel interrupt lands after the task."""
        msg = TaskMessage.model_validate(raw)
        worker_id = self._worker_id()
        started_at = time.time()
        common: dict[str, Any] = {
            "run_id": msg.run_id,
            "task_run_id": msg.task_run_id,
            "task": msg.task,
            "attempt": msg.attempt,
            "worker_id": worker_id,
        }
        if msg.schedule_deadline is not None and started_at > msg.schedule_deadline:
            # Too late to start: the engine times it out too; say so rather than run it.
            self._fail(
                msg,
                common,
                started_at,
                TaskError(
                    type="ScheduleTimeout",
                    message=f"task {msg.task!r} was not started before its schedule deadline",
                ),
                retryable=False,
                timed_out=True,
            )
            return
        started_report = OutboxMessage(
            self._topology.events_exchange,
            topo.TASK_STARTED,
            TaskStarted(**common, started_at=started_at).model_dump_json().encode(),
        )
        if msg.execution_timeout is not None or msg.schedule_deadline is not None:
            # The engine watches this attempt's deadlines: tell it at once that it started.
            started = None
            self._reports.started_now(started_report)
        else:
            # Otherwise `started` goes out only if the task is still running after a
            # short delay (see roost._reporter).
            started = self._heartbeats.reporter.schedule(started_report)
        # Watched by the heartbeat tick: past long_task_ack_seconds it is acked early.
        self._delivery.watch(msg.task_run_id, f"{msg.task_run_id}:{msg.attempt}", started_report)
        try:
            # The attempt's span, child of its run's (the carrier in the message): user
            # spans inside the task nest under it. A no-op when tracing is off.
            with _tracer.start_as_current_span(
                f"task {msg.workflow}.{msg.task}",
                context=tracing.extract(msg.trace),
                kind=SpanKind.CONSUMER,
                attributes={  # few: each costs on every attempt
                    "roost.run_id": msg.run_id,
                    "roost.task": msg.task,
                    "roost.attempt": msg.attempt,
                    "roost.worker_id": worker_id,
                },
            ):
                self._run_attempt(msg, common, started_at, started, worker_id)
        finally:
            self._delivery.unwatch(msg.task_run_id)

    def _run_attempt(
        self,
        msg: TaskMessage,
        common: dict[str, Any],
        started_at: float,
        started: Pending | None,
        worker_id: str,
    ) -> None:
        ctx = Context(
            msg, worker_id, lambda type, data: self._reports.emit(msg, started_at, type, data)
        )
        if self._control is not None and not self._control.begin(msg.task_run_id, ctx):
            self._cancel(started)
            logger.info(
                "task skipped: its run was cancelled",
                extra={"action": "task_skipped_cancelled", "run_id": msg.run_id, "task": msg.task},
            )
            return
        try:
            try:
                output = self._call(msg, ctx)
            finally:
                # No cancel interrupt may target this thread once the task is done.
                if self._control is not None:
                    self._control.end(msg.task_run_id)
        except TaskCancelledError:
            self._cancel(started)
            return  # the run ended CANCELLED already: nothing to report
        except TimeLimitExceeded as exc:
            # Dramatiq's TimeLimit middleware interrupted the task at its execution timeout.
            _span_failed(exc, "timed_out")
            self._cancel(started)
            self._fail(
                msg,
                common,
                started_at,
                TaskError(
                    type="ExecutionTimeout",
                    message=f"task {msg.task!r} ran longer than its execution timeout "
                    f"of {msg.execution_timeout} s and was interrupted",
                ),
                retryable=True,
                timed_out=True,
            )
            return
        except Exception as exc:
            _span_failed(exc, "failed")
            self._cancel(started)
            self._fail(
                msg,
                common,
                started_at,
                TaskError(
                    type=type(exc).__name__, message=str(exc), traceback=traceback.format_exc()
                ),
                retryable=not isinstance(exc, NonRetryableError),
                timed_out=False,
            )
            return
        self._cancel(started)
        report = TaskSucceeded(
            **common, started_at=started_at, finished_at=time.time(), output=output
        )
        self._reports.result(topo.TASK_SUCCEEDED, report)

    @staticmethod
    def _cancel(started: Pending | None) -> None:
        if started is not None:
            started.cancel()

    def _fail(
        self,
        msg: TaskMessage,
        common: dict[str, Any],
        started_at: float,
        error: TaskError,
        *,
        retryable: bool,
        timed_out: bool,
    ) -> None:
        logger.warning(
            "task failed",
            extra={
                "action": "task_failed",
                "run_id": msg.run_id,
                "task": msg.task,
                "attempt": msg.attempt,
                "error": f"{error.type}: {error.message}",
            },
        )
        report = TaskFailed(
            **common,
            started_at=started_at,
            finished_at=time.time(),
            error=error,
            retryable=retryable,
            timed_out=timed_out,
        )
        self._reports.result(topo.TASK_FAILED, report)

    def _call(self, msg: TaskMessage, ctx: Context) -> Any:
        task = self._find_task(msg)
        try:
            task_input = task.workflow.parse_input(msg.input)
        except ValidationError as exc:
            raise ValueError(
                f"input of run {msg.run_id} no longer matches the model: {exc}"
            ) from None
        if task.is_async:
            loop_thread = get_event_loop_thread()
            assert loop_thread is not None, "AsyncIO middleware is not installed"
            result = loop_thread.run_coroutine(
                _in_context(otel_context.get_current(), task.fn(task_input, ctx))
            )
        else:
            result = task.fn(task_input, ctx)
        return _jsonable(task, result)

    def _find_task(self, msg: TaskMessage) -> Task:
        wf = self._workflows.get(msg.workflow)
        task = wf.find(msg.task) if wf else None
        if task is None:
            raise LookupError(
                f"worker {self._name!r} has no task {msg.task!r} in workflow {msg.workflow!r}: "
                "is it running an older version of the code?"
            )
        return task


def _span_failed(exc: BaseException, outcome: str) -> None:
    """Record a failed attempt on its span: the exception as an event, and the status."""
    span = trace.get_current_span()
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute("roost.outcome", outcome)


async def _in_context(ctx: otel_context.Context, coro: Any) -> Any:
    """Run ``coro`` on Dramatiq's event loop thread inside the attempt's trace context,
    so a span the task starts is a child of the attempt's span, as in sync tasks."""
    token = otel_context.attach(ctx)
    try:
        return await coro
    finally:
        otel_context.detach(token)


def _jsonable(task: Task, value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"task {task.name!r} returned a value that is not JSON: {exc}") from None
    return value
