"""Which task messages this worker process holds, and what becomes of each: the engine,
not Dramatiq's retry logic, decides the fate of a task message.

Dramatiq acknowledges a message when its actor returns and, when the actor raises,
retries it a few times and then dead-letters it. For Roost that would be wrong twice
over: a task's own failures are reported to the engine (which applies the task's retry
policy), and a failure of the infrastructure (a report that could not be published)
must never make an attempt vanish while the engine still thinks it is queued. So the
actor never raises for either; this middleware gives it the two other outcomes:

* :meth:`Delivery.ack_now` — long tasks versus RabbitMQ's consumer timeout. RabbitMQ
  closes a channel that holds an unacknowledged message longer than its
  ``consumer_timeout`` (30 minutes by default) and redelivers the message: a long task
  would run again elsewhere, in a loop. So a task still running after
  ``ROOST_LONG_TASK_ACK_SECONDS`` hands its durability to the engine: the worker reports
  ``started`` with a publisher confirm, then acknowledges the message. From then on a
  dead worker's attempt is reclaimed by the scheduler through missed heartbeats.
* :meth:`Delivery.requeue_current` — a result that could not be reported puts its
  message back on its queue (``basic.nack`` with ``requeue``), so that the attempt runs
  again; its result is still recorded once.

Dramatiq acknowledges the message again when the actor returns; its consumer forgets a
delivery tag on the first ack or nack, so the second is a no-op (it logs a warning).

The attempt middleware :class:`LongTasks` (roost._middleware) puts each attempt in the
long-task watch that :meth:`Delivery.ack_now` serves.

:meth:`Delivery.held` lists every attempt this process holds: running, or delivered and
waiting for a free thread. Heartbeats carry the list, so the scheduler can tell a
QUEUED attempt whose message is somewhere from one whose message is gone
(``roost_scheduler.redispatch``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from dramatiq.middleware import Middleware

from roost._middleware import Attempt, AttemptMiddleware
from roost_core.outbox import OutboxMessage


class Delivery(Middleware):
    """Knows which message each worker thread is processing, and can acknowledge it
    early or put it back before the task ends."""

    def __init__(self) -> None:
        self._worker: Any = None
        self._current: dict[int, Any] = {}
        self._lock = threading.Lock()
        # Attempts that may outlive the consumer timeout: task run id -> (since,
        # thread, message id, what builds their `started` report).
        self._long: dict[str, tuple[float, int, str, Callable[[], OutboxMessage]]] = {}

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

    def _consumer(self, message: Any) -> Any:
        if self._worker is None:
            return None
        consumer_thread = self._worker.consumers.get(message.queue_name)
        return None if consumer_thread is None else consumer_thread.consumer

    def ack_now(self, thread_id: int, message_id: str) -> bool:
        """Acknowledge the message thread ``thread_id`` is processing, if it is still
        ``message_id``. Thread-safe: the ack is handed to the consumer's own thread."""
        with self._lock:
            message = self._current.get(thread_id)
        if message is None or message.message_id != message_id:
            return False
        consumer = self._consumer(message)
        if consumer is None:
            return False
        consumer.ack(message)
        return True

    def requeue_current(self) -> bool:
        """Put the message this thread is processing back on its queue, at once, for any
        worker to take again. Returns False when that could not be done; then the
        message's channel is gone, and RabbitMQ has put it back already."""
        with self._lock:
            message = self._current.get(threading.get_ident())
        if message is None:
            return False
        consumer = self._consumer(message)
        if consumer is None:
            return False
        tag = message._tag
        try:
            consumer.known_tags.remove(tag)  # Dramatiq's own ack later becomes a no-op
        except KeyError:
            return False  # acknowledged early: the engine owns this attempt already
        try:
            consumer.connection.add_callback_threadsafe(
                partial(consumer.channel.basic_nack, tag, requeue=True)
            )
        except Exception:  # the connection is closed: RabbitMQ requeued it on close
            return False
        return True

    def watch(
        self, task_run_id: str, message_id: str, started: Callable[[], OutboxMessage]
    ) -> None:
        """An attempt begins on this thread: ack it early if it runs long."""
        with self._lock:
            self._long[task_run_id] = (
                time.monotonic(),
                threading.get_ident(),
                message_id,
                started,
            )

    def unwatch(self, task_run_id: str) -> None:
        with self._lock:
            self._long.pop(task_run_id, None)

    def long_running(self, seconds: float) -> list[tuple[int, str, Callable[[], OutboxMessage]]]:
        """The attempts watched for longer than ``seconds`` (thread, message id, what
        builds their `started` report), each returned once."""
        limit = time.monotonic() - seconds
        with self._lock:
            due = [(k, v) for k, v in self._long.items() if v[0] <= limit]
            for key, _ in due:
                del self._long[key]
        return [(thread, message_id, started) for _, (_, thread, message_id, started) in due]

    def held(self) -> list[str]:
        """Message ids ("task run id:attempt") of every attempt this process holds:
        being processed, or delivered and waiting in Dramatiq's work queue."""
        with self._lock:
            ids = [m.message_id for m in self._current.values()]
        work_queue = getattr(self._worker, "work_queue", None)
        if work_queue is not None:
            with contextlib.suppress(Exception), work_queue.mutex:
                ids.extend(item.message.message_id for item in list(work_queue.queue))
        return ids


class LongTasks(AttemptMiddleware):
    """Puts each attempt in ``delivery``'s long-task watch while it runs and reports:
    past ``long_task_ack_seconds`` the heartbeat tick acknowledges it early
    (roost._heartbeats)."""

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery

    def before_attempt(self, attempt: Attempt) -> None:
        message = attempt.message
        self._delivery.watch(
            message.task_run_id,
            f"{message.task_run_id}:{message.attempt}",
            lambda: attempt.started_report,
        )
        attempt.watched = True

    def after_attempt(self, attempt: Attempt, exception: BaseException | None) -> None:
        if attempt.watched:
            self._delivery.unwatch(attempt.message.task_run_id)
            attempt.watched = False

    def after_skip_attempt(self, attempt: Attempt) -> None:
        self.after_attempt(attempt, None)
