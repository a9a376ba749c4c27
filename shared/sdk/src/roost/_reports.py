"""What a worker tells the engine about an attempt, from the attempt's own thread: it
started, what it emitted (log lines, progress, stream chunks), and how it ended.

Every report goes through the process's one batcher (roost._report_batcher), first in
first out, so a task's emitted lines and its result keep their order. A result waits
for RabbitMQ's confirm before Dramatiq acknowledges the task message; a broker that
cannot take one is tried again on fresh connections for a while, and then the message
goes back to its queue (roost._delivery) rather than the attempt being lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from roost._report_batcher import ReportBatcher
from roost_core import topology as topo
from roost_core.outbox import OutboxMessage
from roost_core.wire import TaskEmitted, TaskMessage

logger = logging.getLogger("roost.worker")


class ReportUndelivered(Exception):
    """An attempt's result could not be published, even on fresh connections: its
    message goes back to the queue rather than being lost."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"could not report attempt {message_id}")
        self.message_id = message_id


class AttemptReports:
    """Sends one worker process's attempt reports through its batcher."""

    def __init__(
        self,
        broker_url: str,
        topology: topo.Topology,
        worker_id: Callable[[], str],
        batcher: ReportBatcher | None = None,
    ) -> None:
        self._worker_id = worker_id
        self._batcher = batcher or ReportBatcher(broker_url, topology)

    def result(self, key: str, report: Any) -> None:
        """Send a result and wait for RabbitMQ's confirm (before Dramatiq acks); raise
        :class:`ReportUndelivered` if the batcher gave it up (roost._report_batcher)."""
        if not self._batcher.submit(report.model_dump_json().encode(), wait=True):
            raise ReportUndelivered(f"{report.task_run_id}:{report.attempt}")

    def started_now(self, started: OutboxMessage) -> None:
        """Say at once, without waiting, that an attempt started; if the broker cannot
        take it, the task runs all the same: its result carries its start time."""
        self._batcher.submit(started.body, wait=False)

    def emit(self, msg: TaskMessage, started_at: float, type: str, data: Any) -> None:
        """Send what a task emitted, without waiting: the batcher keeps it before the
        task's result. A line the broker never takes is dropped with a warning there (a
        log line must not fail the task that wrote it)."""
        emitted = TaskEmitted(
            run_id=msg.run_id,
            task_run_id=msg.task_run_id,
            task=msg.task,
            attempt=msg.attempt,
            worker_id=self._worker_id(),
            type=type,  # type: ignore[arg-type]
            started_at=started_at,
            at=time.time(),
            data=data,
        )
        if not self._batcher.submit(emitted.model_dump_json().encode(), wait=False):
            logger.warning(
                "could not send what a task emitted",
                extra={"action": "emit_failed", "run_id": msg.run_id},
            )
