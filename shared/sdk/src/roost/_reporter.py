"""A per-process background reporter for messages that may wait a little, or be lost
without harm: today the ``started`` report.

Why delay ``started``: most tasks finish in milliseconds, before anyone could see them
RUNNING, and their result carries the start time anyway. Sending ``started`` only for
tasks still running after ``delay`` seconds removes one broker message and one scheduler
update from every short task, which is a third of the broker's messages per task.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time

from roost_core.outbox import OutboxMessage, Publisher

logger = logging.getLogger("roost.worker")


class Pending:
    """A scheduled report; ``cancel()`` before it is due and it is never sent."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reporter:
    def __init__(self, broker_url: str, delay: float) -> None:
        self.delay = delay
        self._publisher = Publisher(broker_url)
        self._heap: list[tuple[float, int, Pending, OutboxMessage]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def schedule(self, message: OutboxMessage) -> Pending:
        """Send ``message`` after ``delay`` seconds unless cancelled first."""
        pending = Pending()
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="roost-reporter", daemon=True
                )
                self._thread.start()
            heapq.heappush(
                self._heap, (time.monotonic() + self.delay, next(self._seq), pending, message)
            )
            if len(self._heap) == 1:
                self._cond.notify()
        return pending

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    break
                due = []
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, _, pending, message = heapq.heappop(self._heap)
                    if not pending.cancelled:
                        due.append(message)
            for message in due:
                try:
                    self._publisher.publish_unconfirmed(message)
                except Exception:
                    # Harmless: the result report carries the start time.
                    logger.warning(
                        "could not send a started report",
                        exc_info=True,
                        extra={"action": "started_report_failed"},
                    )
                    self._publisher.close()
        self._publisher.close()
