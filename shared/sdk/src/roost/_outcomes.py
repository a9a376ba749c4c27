"""Reporting an attempt to the engine, as an attempt middleware: that it started, what
its task emitted, and how it ended.

``started`` goes out at once when the engine times the attempt (roost._deadlines says
so), and otherwise only if the task is still running after a short delay (see
roost._reporter): most tasks finish before anyone could see them RUNNING, and their
result carries the start time anyway. The result (``succeeded``, ``failed``, or
``waiting`` for a durable task that suspended, roost._durable) is
published with a confirm before Dramatiq acknowledges the message; one that cannot be
published raises ``ReportUndelivered`` and the message goes back to its queue
(roost._reports, roost._delivery). A task's own failure is reported, never raised: the
engine applies the task's retry policy.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from roost._middleware import Attempt, AttemptMiddleware, Failed, Succeeded, Waiting
from roost._reporter import Reporter
from roost._reports import AttemptReports
from roost_core import topology as topo
from roost_core.wire import TaskFailed, TaskSucceeded, TaskWaiting

logger = logging.getLogger("roost.worker")


class Outcomes(AttemptMiddleware):
    """Reports an attempt's start, what its task emits, and its result."""

    def __init__(self, reports: AttemptReports, reporter: Reporter) -> None:
        self._reports = reports
        self._reporter = reporter  # sends the delayed `started` reports

    def before_attempt(self, attempt: Attempt) -> None:
        attempt.emit = partial(self._reports.emit, attempt.message, attempt.started_at)
        if attempt.start_at_once:
            self._reports.started_now(attempt.started_report)
        else:
            # Built on the reporter's thread, only if it is due before the attempt ends.
            reporter = self._reporter
            attempt.pending_start = reporter.schedule(
                lambda: reporter.publish_unconfirmed(attempt.started_report)
            )

    def after_attempt(self, attempt: Attempt, exception: BaseException | None) -> None:
        outcome = attempt.outcome
        if outcome is None:
            return  # the task raised what no middleware knows: it goes on to Dramatiq
        if attempt.pending_start is not None:
            attempt.pending_start.cancel()
        message = attempt.message
        common: dict[str, Any] = {
            "run_id": message.run_id,
            "task_run_id": message.task_run_id,
            "task": message.task,
            "attempt": message.attempt,
            "worker_id": attempt.worker_id,
            "started_at": attempt.started_at,
        }
        if isinstance(outcome, Succeeded):
            report = TaskSucceeded(**common, finished_at=time.time(), output=outcome.output)
            self._reports.result(topo.TASK_SUCCEEDED, report)
        elif isinstance(outcome, Failed):
            error = outcome.error
            logger.warning(
                "task failed",
                extra={
                    "action": "task_failed",
                    "run_id": message.run_id,
                    "task": message.task,
                    "attempt": message.attempt,
                    "error": f"{error.type}: {error.message}",
                },
            )
            failed = TaskFailed(
                **common,
                finished_at=time.time(),
                error=error,
                retryable=outcome.retryable,
                timed_out=outcome.timed_out,
                cancelled=outcome.cancelled,
            )
            self._reports.result(topo.TASK_FAILED, failed)
        elif isinstance(outcome, Waiting):
            # Confirmed before the message is acked, as a result: a waiting task lives on
            # in the engine only, and its journal must not be lost with the message.
            waiting = TaskWaiting(
                **common,
                finished_at=time.time(),
                journal=outcome.journal,
                until=outcome.until,
                reason=outcome.reason,
                event=outcome.event,
                approval=outcome.approval,
                children=outcome.children,
                events=outcome.events,
            )
            self._reports.result(topo.TASK_WAITING, waiting)
        # Cancelled: the run ended CANCELLED already, nothing to report.

    def after_skip_attempt(self, attempt: Attempt) -> None:
        self.after_attempt(attempt, None)
