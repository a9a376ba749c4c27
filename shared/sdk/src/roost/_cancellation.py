"""Cancellation of attempts on the worker, as an attempt middleware.

The control listener (roost._control) hears which attempts were cancelled. Through this
middleware an attempt registers with it as it begins, so that a cancelled one never
starts and a running one can be interrupted (``TaskCancelledError`` raised in its
thread), and unregisters the moment its task returns, so that no interrupt can reach
the thread while it reports. An interrupted attempt reports nothing: its run has ended
CANCELLED already.
"""

from __future__ import annotations

import logging

from roost._control import ControlListener
from roost._errors import TaskCancelledError, TaskCancelRequested
from roost._middleware import (
    Attempt,
    AttemptMiddleware,
    Cancelled,
    Failed,
    Outcome,
    SkipAttempt,
)
from roost_core.wire import TaskError

logger = logging.getLogger("roost.worker")


class Cancellation(AttemptMiddleware):
    """Skips attempts already cancelled; makes an interrupt a ``Cancelled`` outcome."""

    def __init__(self, control: ControlListener) -> None:
        self._control = control

    def before_attempt(self, attempt: Attempt) -> None:
        message = attempt.message
        if not self._control.begin(message.task_run_id, attempt.context):
            attempt.outcome = Cancelled()
            logger.info(
                "task skipped: its run was cancelled",
                extra={
                    "action": "task_skipped_cancelled",
                    "run_id": message.run_id,
                    "task": message.task,
                },
            )
            raise SkipAttempt

    def outcome_of(self, attempt: Attempt, error: BaseException) -> Outcome | None:
        if isinstance(error, TaskCancelRequested):  # ctx.cancel(): reported, unlike a run's
            return Failed(
                TaskError(type="Cancelled", message=str(error)),
                retryable=False,
                timed_out=False,
                cancelled=True,
            )
        return Cancelled() if isinstance(error, TaskCancelledError) else None

    def after_attempt(self, attempt: Attempt, exception: BaseException | None) -> None:
        # No cancel interrupt may target this thread once the task is done.
        self._control.end(attempt.message.task_run_id)
