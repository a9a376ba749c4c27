"""An attempt's deadlines on the worker, as an attempt middleware.

A task message may carry two deadlines (``roost_core.dispatch``): the unix time by which
the attempt must have started (``schedule_deadline``), and how long it may run
(``execution_timeout``). The engine enforces both with its timers; the worker enforces
them too, so that a late or overlong attempt stops here rather than running on:

* an attempt picked up after its schedule deadline fails at once, without running, as
  a non-retryable ``ScheduleTimeout``;
* an attempt that runs past its execution timeout is interrupted by Dramatiq's own
  ``TimeLimit`` middleware (the timeout is the message's ``time_limit`` option, see
  ``roost_core.wire.dramatiq_envelope``), which raises ``TimeLimitExceeded`` in the
  task's thread: this middleware makes that a retryable ``ExecutionTimeout``.

An attempt with a deadline reports ``started`` at once, not after the usual short
delay: the engine's timers for it need to know. ``ctx.refresh_timeout`` moves the
thread's time limit (here) and the engine's deadline (a ``deadline`` line it emits).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import dramatiq
from dramatiq.middleware.time_limit import TimeLimit, TimeLimitExceeded

from roost._middleware import Attempt, AttemptMiddleware, Failed, Outcome, SkipAttempt
from roost_core.wire import TaskError, TaskMessage


def too_late(message: TaskMessage, now: float) -> bool:
    """Whether an attempt starting at ``now`` (unix seconds) has missed its schedule
    deadline."""
    return message.schedule_deadline is not None and now > message.schedule_deadline


def engine_watches(message: TaskMessage) -> bool:
    """Whether the engine times this attempt: then it must hear at once that it started."""
    return message.execution_timeout is not None or message.schedule_deadline is not None


def schedule_timeout(message: TaskMessage) -> Failed:
    """The outcome of an attempt that was not started before its schedule deadline."""
    error = TaskError(
        type="ScheduleTimeout",
        message=f"task {message.task!r} was not started before its schedule deadline",
    )
    return Failed(error, retryable=False, timed_out=True)


def execution_timeout(message: TaskMessage) -> Failed:
    """The outcome of an attempt interrupted at its execution timeout."""
    error = TaskError(
        type="ExecutionTimeout",
        message=f"task {message.task!r} ran longer than its execution timeout "
        f"of {message.execution_timeout} s and was interrupted",
    )
    return Failed(error, retryable=True, timed_out=True)


class Deadlines(AttemptMiddleware):
    """Fails an attempt that starts too late or runs too long."""

    def before_attempt(self, attempt: Attempt) -> None:
        if too_late(attempt.message, attempt.started_at):
            # The engine times it out too; say so rather than run it.
            attempt.outcome = schedule_timeout(attempt.message)
            raise SkipAttempt
        attempt.start_at_once = engine_watches(attempt.message)
        if attempt.message.execution_timeout is not None:
            attempt.context._extend = _extender(threading.get_ident())

    def outcome_of(self, attempt: Attempt, error: BaseException) -> Outcome | None:
        if isinstance(error, TimeLimitExceeded):
            return execution_timeout(attempt.message)
        return None


def _extender(thread_id: int) -> Callable[[float], None]:
    """ctx.refresh_timeout's hook: move this worker thread's Dramatiq time limit to
    ``seconds`` from now (TimeLimit's timeout manager, the one that interrupts the thread;
    an async task's coroutine is cancelled through the same thread)."""

    def extend(seconds: float) -> None:
        for middleware in dramatiq.get_broker().middleware:
            if isinstance(middleware, TimeLimit):
                middleware.manager.add_timeout(thread_id, seconds * 1000)  # type: ignore[no-untyped-call]

    return extend
