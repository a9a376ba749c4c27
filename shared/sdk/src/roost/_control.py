"""Cancellation on the worker: a per-process listener for cancel broadcasts.

The api commits a cancellation, then broadcasts the attempts it stopped on the control
exchange. Every worker process listens on a queue of its own: an attempt running here is
interrupted (sync tasks get TaskCancelledError raised in their thread, through Dramatiq's
thread-interrupt machinery; async tasks are cancelled), and an attempt still on a queue
is remembered so that it never starts here. A worker that starts after the broadcast
does not hear it; the engine then discards whatever such a run reports, since the run
has already ended CANCELLED.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import pika
import pika.exceptions
from dramatiq.threading import raise_thread_exception
from pydantic import ValidationError

from roost._errors import TaskCancelledError
from roost_core import broker
from roost_core.topology import TASK_CANCEL, Topology, declare_core
from roost_core.wire import CancelTasks

if TYPE_CHECKING:
    from roost._context import Context

logger = logging.getLogger("roost.worker")

_REMEMBER = 100_000  # cancelled attempts remembered per process (oldest forgotten first)


class ControlListener:
    def __init__(
        self,
        broker_url: str,
        topology: Topology,
        grace: float = 0.5,
        fetch_recent: Callable[[], list[str]] | None = None,
    ) -> None:
        self._url = broker_url
        self._grace = grace
        self._fetch_recent = fetch_recent
        self._topology = topology
        self._lock = threading.Lock()
        self._running: dict[str, tuple[int, Context]] = {}
        self._cancelled: OrderedDict[str, float] = OrderedDict()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="roost-control", daemon=True)

    def start(self, wait: float = 10.0) -> None:
        """Start listening; wait until the queue is bound so no broadcast is missed."""
        self._thread.start()
        self._ready.wait(wait)

    def begin(self, task_run_id: str, ctx: Context) -> bool:
        """Register an attempt about to run in this thread; False if it was cancelled."""
        with self._lock:
            if task_run_id in self._cancelled:
                return False
            self._running[task_run_id] = (threading.get_ident(), ctx)
            return True

    def running(self) -> dict[str, int]:
        """Attempts running in this process: task run id -> attempt number."""
        with self._lock:
            return {k: ctx.attempt_number for k, (_, ctx) in self._running.items()}

    def end(self, task_run_id: str) -> None:
        with self._lock:
            self._running.pop(task_run_id, None)

    def cancel(self, task_run_ids: list[str]) -> None:
        with self._lock:
            now = time.time()
            for task_run_id in task_run_ids:
                self._cancelled[task_run_id] = now
                self._cancelled.move_to_end(task_run_id)
                running = self._running.get(task_run_id)
                if running is not None:
                    # Cooperative code sees ctx.is_cancelled at once and may stop by
                    # itself; whatever still runs after the grace period is interrupted.
                    running[1]._mark_cancelled()
                    timer = threading.Timer(self._grace, self._interrupt, (task_run_id, running[0]))
                    timer.daemon = True
                    timer.start()
            while len(self._cancelled) > _REMEMBER:
                self._cancelled.popitem(last=False)

    def _interrupt(self, task_run_id: str, thread_id: int) -> None:
        with self._lock:
            running = self._running.get(task_run_id)
            if running is None or running[0] != thread_id:
                return  # it stopped by itself
            # One interrupt per attempt: it is no longer registered as running.
            del self._running[task_run_id]
            raise_thread_exception(thread_id, TaskCancelledError)  # type: ignore[no-untyped-call]
        logger.info(
            "task interrupted: its run was cancelled",
            extra={"action": "task_cancelled", "task_run_id": task_run_id},
        )

    def _loop(self) -> None:
        backoff = 0.5
        while True:
            try:
                connection = broker.connect(self._url)
                channel = connection.channel()
                declare_core(channel, self._topology)
                queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
                channel.queue_bind(queue, self._topology.control_exchange, routing_key=TASK_CANCEL)
                channel.basic_consume(queue, self._on_message, auto_ack=True)
                # Bound first, then ask for what was cancelled before: no gap between.
                self._catch_up()
                self._ready.set()
                backoff = 0.5
                channel.start_consuming()
            except (pika.exceptions.AMQPError, OSError, Exception):
                logger.warning(
                    "control listener lost the broker; reconnecting",
                    extra={"action": "control_reconnect"},
                    exc_info=True,
                )
                self._ready.set()
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _catch_up(self) -> None:
        if self._fetch_recent is None:
            return
        try:
            self.cancel(self._fetch_recent())
        except Exception:
            logger.warning(
                "could not fetch recent cancellations",
                extra={"action": "cancel_catch_up_failed"},
                exc_info=True,
            )

    def _on_message(self, channel: object, method: object, props: object, body: bytes) -> None:
        try:
            message = CancelTasks.model_validate_json(body)
        except ValidationError:
            logger.error("malformed control message ignored", extra={"body": body[:200]})
            return
        self.cancel(message.task_run_ids)
