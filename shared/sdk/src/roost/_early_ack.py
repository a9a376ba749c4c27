"""Long tasks versus RabbitMQ's consumer timeout.

RabbitMQ closes a channel that holds an unacknowledged message longer than its
``consumer_timeout`` (30 minutes by default) and redelivers the message: a long task
would run again elsewhere, and again, in a loop. So a task still running after
``ROOST_LONG_TASK_ACK_SECONDS`` (10 minutes by default) hands its durability over to the
engine: the worker first reports ``started`` with a publisher confirm, so the engine
knows the attempt runs on this worker, and only then acknowledges the message. From then
on, if the worker dies, its heartbeats stop and the scheduler gives the attempt to
another worker (see docs/reliability.md); RabbitMQ never needs to redeliver it.

Dramatiq acknowledges the message again when the task returns; its consumer forgets a
delivery tag on the first ack, so the second is a no-op (it logs a warning).
"""

from __future__ import annotations

import threading
from typing import Any

from dramatiq.middleware import Middleware


class EarlyAck(Middleware):
    """Knows which message each worker thread is processing, and can acknowledge it
    before the task ends."""

    def __init__(self) -> None:
        self._worker: Any = None
        self._current: dict[int, Any] = {}
        self._lock = threading.Lock()

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        self._worker = worker

    def before_process_message(self, broker: Any, message: Any) -> None:
        with self._lock:
            self._current[threading.get_ident()] = message

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        with self._lock:
            self._current.pop(threading.get_ident(), None)

    after_skip_message = after_process_message

    def ack_now(self, thread_id: int, message_id: str) -> bool:
        """Acknowledge the message thread ``thread_id`` is processing, if it is still
        ``message_id``. Thread-safe: the ack is handed to the consumer's own thread."""
        with self._lock:
            message = self._current.get(thread_id)
        if message is None or message.message_id != message_id or self._worker is None:
            return False
        consumer_thread = self._worker.consumers.get(message.queue_name)
        if consumer_thread is None or consumer_thread.consumer is None:
            return False
        consumer_thread.consumer.ack(message)
        return True
