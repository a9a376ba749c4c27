"""A per-process background reporter for messages that may wait a little, or be lost
without harm: the ``started`` report and the worker's heartbeat.

Why delay ``started``: most tasks finish in milliseconds, before anyone could see them
RUNNING, and their result carries the start time anyway. Sending ``started`` only for
tasks still running after ``delay`` seconds removes one broker message and one scheduler
update from every short task, which is a third of the broker's messages per task.

Heartbeats tell the scheduler this process is alive and which attempts it runs; a
process that stops sending them (killed, frozen) loses its RUNNING attempts to other
workers after the scheduler's heartbeat timeout. A change of state (draining, stopped)
goes out at once through :meth:`Reporter.beat_now`, with a confirm, so that the process
can wait, briefly, until RabbitMQ has it before it exits.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from roost_core.outbox import OutboxMessage, Publisher

logger = logging.getLogger("roost.worker")

_RETRY_PAUSE = 0.2  # between tries of a heartbeat that announces a change of state


class Pending:
    """A scheduled report; ``cancel()`` before it is due and it is never sent."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reporter:
    def __init__(
        self,
        broker_url: str,
        delay: float,
        heartbeat: Callable[[], OutboxMessage] | None = None,
        heartbeat_interval: float = 5.0,
    ) -> None:
        self.delay = delay
        self._publisher = Publisher(broker_url)
        self._heap: list[tuple[float, int, Pending, OutboxMessage | Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._heartbeat = heartbeat
        self._interval = heartbeat_interval
        self._next_beat = 0.0

    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="roost-reporter", daemon=True
                )
                self._thread.start()

    def schedule(
        self, message: OutboxMessage | Callable[[], None], delay: float | None = None
    ) -> Pending:
        """Send ``message`` (or call it, on this reporter's thread) after ``delay``
        seconds (default: the started-report delay) unless cancelled first."""
        pending = Pending()
        self.start()
        wait = self.delay if delay is None else delay
        with self._cond:
            entry = (time.monotonic() + wait, next(self._seq), pending, message)
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._cond.notify()
        return pending

    def publish_unconfirmed(self, message: OutboxMessage) -> None:
        """Publish without a confirm; only from a scheduled callable (this reporter's
        own thread)."""
        self._publisher.publish_unconfirmed(message)

    def publish_confirmed(self, message: OutboxMessage) -> None:
        """Publish and wait for RabbitMQ's confirm; only from a scheduled callable (this
        reporter's own thread)."""
        self._publisher.publish(message)

    def beat_now(self, timeout: float = 0.0) -> bool:
        """Send a heartbeat at once, from this reporter's thread and with a publisher
        confirm, after whatever is already due; retried until ``timeout`` s have passed
        (at least once). Waits up to ``timeout`` s for RabbitMQ to take it and returns
        whether it did; ``timeout`` 0 returns at once (False). The thread sends in
        order, so an earlier change of state went out (or was given up) before it."""
        make = self._heartbeat
        if make is None:
            raise RuntimeError("this reporter sends no heartbeats")
        sent = threading.Event()
        deadline = time.monotonic() + timeout

        def beat() -> None:
            while True:
                try:
                    self._publisher.publish(make())
                except Exception:
                    self._publisher.close()  # a fresh connection for the next try
                    if time.monotonic() + _RETRY_PAUSE >= deadline:
                        raise  # logged by the loop; the next periodic beat repeats it
                    time.sleep(_RETRY_PAUSE)
                else:
                    sent.set()
                    return

        self.schedule(beat, delay=0)
        return sent.wait(timeout) if timeout > 0 else False

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _next_wakeup(self) -> float | None:
        times = [self._heap[0][0]] if self._heap else []
        if self._heartbeat is not None:
            times.append(self._next_beat)
        return min(times) if times else None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    wakeup = self._next_wakeup()
                    now = time.monotonic()
                    if wakeup is not None and wakeup <= now:
                        break
                    self._cond.wait(None if wakeup is None else wakeup - now)
                if self._stopped:
                    break
                due = []
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, _, pending, message = heapq.heappop(self._heap)
                    if not pending.cancelled:
                        due.append(message)
                beat = self._heartbeat is not None and self._next_beat <= now
                if beat:
                    self._next_beat = now + self._interval
            if beat and self._heartbeat is not None:
                due.append(self._heartbeat())
            for message in due:
                try:
                    if callable(message):
                        message()
                    else:
                        self._publisher.publish_unconfirmed(message)
                except Exception:
                    # Harmless: a result carries its start time, and heartbeats repeat.
                    logger.warning(
                        "could not send a report", exc_info=True, extra={"action": "report_failed"}
                    )
                    self._publisher.close()
        self._publisher.close()
