"""What happens around each task attempt on a worker thread, as middlewares in
Dramatiq's style: a base class of no-op hooks that ``roost._attempt.AttemptRunner``
calls in the order ``Worker`` lists them (``before_attempt`` in that order, the others
in reverse, so each middleware wraps the ones after it).

These are hooks of the actor, not Dramatiq middlewares, because Dramatiq must never
see a task's own failure (it would dead-letter the message): the runner catches what
the task raised, asks the middlewares what it means (:meth:`AttemptMiddleware.outcome_of`)
and hands the :class:`Attempt`, with its :data:`Outcome`, back through them. The state
the middlewares share for one attempt lives on that object, not in globals.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from roost._context import Context
from roost._durable import DurableContext, WaitReason
from roost._errors import NonRetryableError
from roost._reporter import Pending
from roost_core.outbox import OutboxMessage
from roost_core.wire import ApprovalAsk, DurableCall, EventWait, TaskError, TaskMessage


@dataclass(frozen=True)
class Succeeded:
    """The task returned ``output`` (JSON)."""

    output: Any


@dataclass(frozen=True)
class Failed:
    """The attempt failed: the engine applies the task's retry policy if ``retryable``."""

    error: TaskError
    retryable: bool
    timed_out: bool
    cancelled: bool = False  # the task cancelled itself (ctx.cancel): CANCELLED, no retry

    @classmethod
    def of(cls, exc: BaseException) -> Failed:
        """A task's own exception: retryable unless it is a NonRetryableError."""
        error = TaskError(
            type=type(exc).__name__,
            message=str(exc),
            traceback="".join(traceback.format_exception(exc)),
        )
        return cls(error, retryable=not isinstance(exc, NonRetryableError), timed_out=False)


@dataclass(frozen=True)
class Cancelled:
    """The attempt's run was cancelled: it ended CANCELLED already, nothing to report."""


@dataclass(frozen=True)
class Waiting:
    """A durable task suspended to wait (roost._durable): reported as TaskWaiting, and
    resumed by the engine with ``journal`` to replay at ``until`` (unix seconds; None:
    no timeout), or, waiting for ``event`` (reason "event"), once that event comes, or
    asking ``approval`` (reason "approval"), once a person decides."""

    journal: list[DurableCall]
    until: float | None
    reason: WaitReason
    event: EventWait | None = None
    approval: ApprovalAsk | None = None  # reason "approval": what a person is asked
    children: list[str] | None = None  # reason "children": the child runs waited for
    events: list[EventWait] | None = None  # reason "any": its event branches


Outcome = Succeeded | Failed | Cancelled | Waiting


class SkipAttempt(Exception):
    """Raised by a middleware's ``before_attempt`` so that the task does not run."""


def _no_emit(type: str, data: Any) -> None:
    return None


@dataclass
class Attempt:
    """One task attempt on its worker thread, shared by its middlewares."""

    message: TaskMessage
    worker_id: str
    started_at: float  # unix seconds; carried by every report of the attempt
    # Builds its TaskStarted report (see started_report).
    make_started: Callable[[], OutboxMessage]
    durable: bool = False  # a durable task's: its context is a DurableContext
    # Where ``context``'s emitted lines go (roost._outcomes sets it).
    emit: Callable[[str, Any], None] = _no_emit
    context: Context = field(init=False)
    outcome: Outcome | None = None  # None until known; stays None for an unknown BaseException
    error: BaseException | None = None  # what the task raised, if it raised
    # Set by the middleware named, for its own later hooks.
    start_at_once: bool = False  # Deadlines: the engine watches this attempt's deadlines
    pending_start: Pending | None = None  # Outcomes: a delayed `started` report
    watched: bool = False  # LongTasks: in Delivery's long-task watch
    # Spans: the attempt's span, current while open
    span_scope: AbstractContextManager[Any, Any] | None = None
    _started: OutboxMessage | None = field(default=None, init=False, repr=False)

    @property
    def started_report(self) -> OutboxMessage:
        """The attempt's TaskStarted, ready to publish; built when first asked for, since
        most attempts end before their `started` report is due and never send one (it
        was 8% of a no-op task's CPU, issue #17)."""
        if self._started is None:
            self._started = self.make_started()
        return self._started

    def __post_init__(self) -> None:
        kind = DurableContext if self.durable else Context
        self.context = kind(self.message, self.worker_id, lambda type, data: self.emit(type, data))


class AttemptMiddleware:
    """Base class for what happens around each task attempt; every hook is a no-op."""

    def before_attempt(self, attempt: Attempt) -> None:
        """Called before the task runs, in list order; raise SkipAttempt not to run it."""

    def outcome_of(self, attempt: Attempt, error: BaseException) -> Outcome | None:
        """What the task's ``error`` means, or None to leave it to the other middlewares."""
        return None

    def after_attempt(self, attempt: Attempt, exception: BaseException | None) -> None:
        """Called once the task ran, in reverse order; ``exception`` is escaping to Dramatiq."""

    def after_skip_attempt(self, attempt: Attempt) -> None:
        """Called on every middleware, in reverse order, when one skipped the attempt."""
