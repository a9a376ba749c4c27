"""What a worker tells the engine about an attempt, from the attempt's own thread: it
started, what it emitted (log lines, progress, stream chunks), and how it ended.

Each worker thread publishes on a connection of its own (pika connections are not
thread-safe), so a task's emitted lines and its result keep their order. Results wait
for RabbitMQ's confirm before Dramatiq acknowledges the task message; a broker that
cannot take one is tried again on fresh connections for a while, and then the message
goes back to its queue (roost._delivery) rather than the attempt being lost.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pika.exceptions
from pydantic import BaseModel

from roost_core import topology as topo
from roost_core.errors import BrokerUnavailableError
from roost_core.outbox import OutboxMessage, Publisher
from roost_core.wire import TaskEmitted, TaskMessage

logger = logging.getLogger("roost.worker")

# A report that cannot be published is tried again, on a fresh connection each time,
# for this long before its message goes back to the queue (the broker is down, or this
# process is cut off from it: another worker may do better).
_RETRY_SECONDS = 30.0
_RETRY_PAUSES = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
BROKER_ERRORS = (pika.exceptions.AMQPError, BrokerUnavailableError, OSError)


class ReportUndelivered(Exception):
    """An attempt's result could not be published, even on fresh connections: its
    message goes back to the queue rather than being lost."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"could not report attempt {message_id}")
        self.message_id = message_id


class AttemptReports:
    """Publishes one worker process's attempt reports, a connection per thread."""

    def __init__(
        self, broker_url: str, topology: topo.Topology, worker_id: Callable[[], str]
    ) -> None:
        self._url = broker_url
        self._topology = topology
        self._worker_id = worker_id
        self._local = threading.local()

    def _publisher(self) -> Publisher:
        pub: Publisher | None = getattr(self._local, "publisher", None)
        if pub is None:
            pub = self._local.publisher = Publisher(self._url)
        return pub

    def message(self, key: str, report: BaseModel) -> OutboxMessage:
        return OutboxMessage(self._topology.events_exchange, key, report.model_dump_json().encode())

    def result(self, key: str, report: Any) -> None:
        """Publish a result and wait for RabbitMQ's confirm (before Dramatiq acks),
        trying again on fresh connections for up to _RETRY_SECONDS; then raise
        :class:`ReportUndelivered`."""
        message = self.message(key, report)
        give_up = time.monotonic() + _RETRY_SECONDS
        for tries in itertools.count():
            try:
                self._publisher().publish(message)
                return
            except BROKER_ERRORS as exc:
                self._publisher().close()
                pause = _RETRY_PAUSES[min(tries, len(_RETRY_PAUSES) - 1)]
                if time.monotonic() + pause > give_up:
                    raise ReportUndelivered(f"{report.task_run_id}:{report.attempt}") from exc
                logger.warning(
                    "could not report an attempt; trying again",
                    extra={"action": "report_retry", "tries": tries + 1, "error": repr(exc)},
                )
                time.sleep(pause)

    def started_now(self, started: OutboxMessage) -> None:
        """Say at once, without a confirm, that an attempt started; if the broker cannot
        take it, run the task all the same: its result carries its start time."""
        try:
            self._publisher().publish_unconfirmed(started)
        except BROKER_ERRORS as exc:
            logger.warning(
                "could not report a start",
                extra={"action": "started_report_failed", "error": repr(exc)},
            )
            self._publisher().close()

    def emit(self, msg: TaskMessage, started_at: float, type: str, data: Any) -> None:
        """Publish what a task emitted, with a confirm, from the task's own thread: its
        channel also carries the task's result, so the log keeps the task's order."""
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
        try:
            self._publisher().publish(self.message(topo.TASK_EMITTED, emitted))
        except BROKER_ERRORS as exc:
            # A log line must not fail the task that wrote it: the worker's own log keeps
            # it, and the task's result (which is retried) still reaches the engine.
            logger.warning(
                "could not send what a task emitted",
                extra={"action": "emit_failed", "run_id": msg.run_id, "error": repr(exc)},
            )
            self._local.publisher = None
