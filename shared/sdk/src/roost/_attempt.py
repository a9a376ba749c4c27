"""Running one task attempt on a worker thread: the task function (sync, or async on
Dramatiq's event-loop thread) with its input and its Context, inside the attempt
middlewares that ``Worker`` composes (roost._middleware: deadlines, the long-task watch,
the span, reporting, cancellation). What the task raised is never raised to Dramatiq:
the middlewares say what it means and report it; the engine applies the task's retry
policy.

A durable task (roost._durable) gets a DurableContext, and suspends by raising
``WaitRequested``, which becomes a ``Waiting`` outcome here. It is a BaseException, and
still comes out of ``EventLoopThread.run_coroutine`` intact: asyncio sets whatever a
task's coroutine raises (bar KeyboardInterrupt and SystemExit) on its future, whose
``result()`` raises it again in this thread (tests/unit/test_durable_attempts.py runs it
through a real event-loop thread)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from dramatiq.asyncio import get_event_loop_thread
from opentelemetry import context as otel_context
from pydantic import ValidationError

from roost import _task_logs as task_logs
from roost._context import Context
from roost._durable import DurableContext, WaitRequested
from roost._middleware import (
    Attempt,
    AttemptMiddleware,
    Failed,
    Outcome,
    SkipAttempt,
    Succeeded,
    Waiting,
)
from roost._typed import jsonable
from roost._workflow import Task, Workflow
from roost_core import topology as topo
from roost_core.outbox import OutboxMessage
from roost_core.wire import TaskMessage, TaskStarted


class AttemptRunner:
    """Runs the attempts of one worker process's workflows through ``middlewares``
    (outermost first)."""

    def __init__(
        self,
        name: str,
        workflows: dict[str, Workflow],
        worker_id: Callable[[], str],
        topology: topo.Topology,
        middlewares: Sequence[AttemptMiddleware],
    ) -> None:
        self._name = name
        self._workflows = workflows
        self._worker_id = worker_id
        self._topology = topology
        self.middlewares = list(middlewares)

    def execute(self, raw: dict[str, Any]) -> None:
        """Run one task attempt and report its outcome. Raises ReportUndelivered only
        when its result could not be published (its message then goes back to the
        queue), and TaskCancelledError when a cancel interrupt lands after the task."""
        attempt = self._attempt(TaskMessage.model_validate(raw))
        entered, skipped, early = 0, False, None
        try:
            for middleware in self.middlewares:
                middleware.before_attempt(attempt)
                entered += 1
        except SkipAttempt:
            skipped = True
        except BaseException as exc:  # an interrupt landing early
            early = exc
        if skipped:
            # As Dramatiq's after_skip_message: every middleware hears of it, and one
            # whose before_attempt did not run finds its state on the attempt unset.
            escaped = self._unwind(attempt, self.middlewares, None, skipped=True)
            if escaped is not None:
                raise escaped
            return
        if early is not None:  # unwind what began
            raise self._unwind(attempt, self.middlewares[:entered], early, skipped=False) or early
        escaping: BaseException | None = None
        try:
            attempt.outcome = Succeeded(self._call(attempt))
        except BaseException as error:
            attempt.error = error
            attempt.outcome = self._outcome_of(attempt, error)
            if attempt.outcome is None:
                escaping = error  # SystemExit and the like: Dramatiq's to handle
        escaping = self._unwind(attempt, self.middlewares, escaping, skipped=False)
        attempt.error = None  # a traceback's frames are big; drop them soon
        if escaping is not None:
            raise escaping

    def _attempt(self, msg: TaskMessage) -> Attempt:
        worker_id = self._worker_id()
        started_at = time.time()

        def started() -> OutboxMessage:
            report = TaskStarted(
                run_id=msg.run_id,
                task_run_id=msg.task_run_id,
                task=msg.task,
                attempt=msg.attempt,
                worker_id=worker_id,
                started_at=started_at,
            )
            return OutboxMessage(
                self._topology.events_exchange,
                topo.TASK_STARTED,
                report.model_dump_json().encode(),
            )

        wf = self._workflows.get(msg.workflow)
        task = wf.find(msg.task) if wf else None  # an unknown one fails later, in _call
        return Attempt(
            msg, worker_id, started_at, started, durable=task is not None and task.durable
        )

    def _outcome_of(self, attempt: Attempt, error: BaseException) -> Outcome | None:
        if isinstance(error, WaitRequested):  # a durable task suspended: not a failure
            return Waiting(
                error.journal,
                error.until,
                error.reason,
                error.event,
                error.approval,
                error.children,
                error.events,
            )
        for middleware in self.middlewares:
            outcome = middleware.outcome_of(attempt, error)
            if outcome is not None:
                return outcome
        return Failed.of(error) if isinstance(error, Exception) else None

    @staticmethod
    def _unwind(
        attempt: Attempt,
        middlewares: Sequence[AttemptMiddleware],
        escaping: BaseException | None,
        *,
        skipped: bool,
    ) -> BaseException | None:
        """The after hooks of ``middlewares``, innermost first, as nested ``with``
        blocks would exit: each runs even if an inner one raised, and sees what is
        escaping; returns what escapes them all."""
        for middleware in reversed(middlewares):
            try:
                if skipped:
                    middleware.after_skip_attempt(attempt)
                else:
                    middleware.after_attempt(attempt, escaping)
            except BaseException as exc:
                escaping = exc
        return escaping

    def _call(self, attempt: Attempt) -> Any:
        msg, ctx = attempt.message, attempt.context
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
                _in_context(otel_context.get_current(), ctx, task.fn(task_input, ctx))
            )
        else:
            with task_logs.running(ctx):
                result = task.fn(task_input, ctx)
        if isinstance(ctx, DurableContext):
            ctx._check_returned()
        return jsonable(result, f"task {task.name!r}")

    def _find_task(self, msg: TaskMessage) -> Task:
        wf = self._workflows.get(msg.workflow)
        task = wf.find(msg.task) if wf else None
        if task is None:
            raise LookupError(
                f"worker {self._name!r} has no task {msg.task!r} in workflow {msg.workflow!r}: "
                "is it running an older version of the code?"
            )
        return task


async def _in_context(ctx: otel_context.Context, task_ctx: Context, coro: Any) -> Any:
    """Run ``coro`` on Dramatiq's event loop thread inside the attempt's trace context,
    so a span the task starts is a child of the attempt's span, and as the running task
    (roost._task_logs), as in sync tasks."""
    token = otel_context.attach(ctx)
    try:
        with task_logs.running(task_ctx):
            return await coro
    finally:
        otel_context.detach(token)
