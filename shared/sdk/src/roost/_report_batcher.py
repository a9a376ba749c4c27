"""One worker process's reports to the engine, published in batches by a thread of
their own.

Why: each worker thread used to publish its task's result on a connection of its own
and wait for RabbitMQ's confirm, so every task cost a message, a persistent write and a
confirm round trip, on a blocking pika connection whose Python framing is most of a
small task's CPU (issue #17). Now a worker thread hands its report to this process's
batcher and waits; the batcher publishes everything that came in since its last publish
as one message (``roost_core.wire.encode_report_batch``), and one confirm covers them
all. Batches form from what has already arrived, never by waiting to fill one (as the
scheduler's own, roost_scheduler.consumer), so a report alone goes out at once; under
load, a message carries the reports of every task that ended during the last round trip.

Order: one thread, one channel, first in first out, and a failed batch is retried before
anything after it, so what a task emitted reaches the engine before its result.

A batch the broker will not take is tried again on a fresh connection, with pauses, for
up to ``retry_seconds`` from each report's submission; a result still not taken by then
is given up, and its waiting thread puts the task message back on its queue
(roost._delivery); what a task emitted is dropped with a warning (a log line must not
fail its task).

Nothing needs flushing when the process stops: Dramatiq lets each worker thread finish
its task, each result waits for its confirm, and what a task emitted or said of its
start was queued before its result.
"""

from __future__ import annotations

import _thread
import itertools
import logging
import os
import queue
import threading
import time

import pika.exceptions

from roost_core import topology as topo
from roost_core.errors import BrokerUnavailableError
from roost_core.outbox import OutboxMessage, Publisher
from roost_core.wire import encode_report_batch

logger = logging.getLogger("roost.worker")

BROKER_ERRORS = (pika.exceptions.AMQPError, BrokerUnavailableError, OSError)
_RETRY_PAUSES = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class Submitted:
    """A report handed to the batcher, until RabbitMQ has it or it is given up.

    A report whose thread waits holds a bare lock, taken at once and released when it
    is settled: the cheapest latch Python has. (A ``threading.Event`` per report, a
    Condition and its Lock built in Python, was a tenth of a worker's CPU under load,
    issue #17.) Only the batcher's thread settles a report, once."""

    __slots__ = ("body", "at", "_latch", "_settled", "delivered")

    def __init__(self, body: bytes, *, waited: bool) -> None:
        self.body = body
        self.at = time.monotonic()
        self._latch: _thread.LockType | None = None
        if waited:
            self._latch = _thread.allocate_lock()
            self._latch.acquire()
        self._settled = False
        self.delivered = False

    @property
    def settled(self) -> bool:
        return self._settled

    def settle(self, delivered: bool) -> None:
        self.delivered = delivered
        self._settled = True
        if self._latch is not None:
            self._latch.release()

    def wait(self) -> bool:
        """Block until RabbitMQ has the report (True) or it was given up (False)."""
        if self._latch is not None:
            with self._latch:  # released when settled; released again for anyone after
                pass
        return self.delivered


_STOP = object()  # put on the queue by stop(): send what came before, then end


class ReportBatcher:
    """Publishes one process's reports, a batch per message, each with a confirm."""

    def __init__(
        self,
        broker_url: str,
        topology: topo.Topology,
        *,
        retry_seconds: float = 30.0,
        max_reports: int = 256,
        max_bytes: int = 1 << 20,
        max_queued: int = 10_000,
    ) -> None:
        self._url = broker_url
        self._exchange = topology.events_exchange
        self.retry_seconds = retry_seconds
        self._max_reports = max_reports
        self._max_bytes = max_bytes
        # Past this many reports waiting (a broker gone, a task logging in a loop), even
        # what a task emits waits for its turn rather than piling up in memory.
        self._max_queued = max_queued
        self._reset()
        # A forked worker process starts empty, with a thread of its own when it first
        # reports (the parent's thread does not exist there, nor may its lock be free).
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # The hand-over is a C queue: putting a report costs no Python-level Condition
        # and no notify (issue #17). The lock only orders submissions against stop().
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Submitted | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._stopping = False  # the batcher's thread took _STOP: nothing comes after it
        self._carry: Submitted | None = None  # taken, but did not fit in the last batch

    def submit(self, body: bytes, *, wait: bool) -> bool:
        """Queue one encoded report (``model_dump_json``). With ``wait``, block until
        RabbitMQ has confirmed it and return whether it did; without, return at once
        (True) unless too many reports are waiting already."""
        crowded = self._queue.qsize() >= self._max_queued
        item = Submitted(body, waited=wait or crowded)
        with self._lock:
            if self._stopped:
                return False  # nothing sends any more: a result's message goes back
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="roost-reports", daemon=True)
                self._thread.start()
            self._queue.put(item)
        if wait or crowded:
            return item.wait()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop the thread (waits up to ``timeout`` s)."""
        with self._lock:
            self._stopped = True
            self._queue.put(_STOP)  # after it, submit() puts nothing
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _take(self) -> list[Submitted] | None:
        """The next batch: whatever has arrived, up to the size limits, waiting only
        while nothing has; None once stopped and everything went out."""
        batch: list[Submitted] = []
        size = 0
        item: Submitted | object | None = self._carry
        self._carry = None
        if item is None:
            if self._stopping:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    return None
            else:
                item = self._queue.get()
        while True:
            if item is _STOP:
                self._stopping = True
            elif isinstance(item, Submitted):
                if batch and (
                    len(batch) >= self._max_reports or size + len(item.body) > self._max_bytes
                ):
                    self._carry = item  # the first of the next batch
                    return batch
                batch.append(item)
                size += len(item.body)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        if batch:
            return batch
        return None if self._stopping else self._take()

    def _run(self) -> None:
        publisher = Publisher(self._url)
        try:
            while (batch := self._take()) is not None:
                try:
                    self._send(publisher, batch)
                except Exception:
                    # Not the broker (that is retried in _send): a bug. Its reports are
                    # given up, so that no worker thread waits forever; the thread goes on.
                    logger.exception("could not send reports", extra={"action": "report_failed"})
                    publisher.close()
                    for item in batch:
                        if not item.settled:
                            item.settle(False)
        finally:
            publisher.close()

    def _send(self, publisher: Publisher, batch: list[Submitted]) -> None:
        """Publish ``batch`` as one confirmed message, trying again on fresh connections
        until it goes or every report in it has waited ``retry_seconds``."""
        for tries in itertools.count():
            message = OutboxMessage(
                self._exchange, topo.TASK_REPORTS, encode_report_batch([i.body for i in batch])
            )
            try:
                publisher.publish(message)
            except BROKER_ERRORS as exc:
                publisher.close()
                pause = _RETRY_PAUSES[min(tries, len(_RETRY_PAUSES) - 1)]
                give_up = time.monotonic() + pause - self.retry_seconds
                expired = [i for i in batch if i.at <= give_up]
                for item in expired:
                    item.settle(False)
                batch = [i for i in batch if i.at > give_up]
                logger.warning(
                    "could not send reports; trying again",
                    extra={
                        "action": "report_retry",
                        "tries": tries + 1,
                        "reports": len(batch),
                        "given_up": len(expired),
                        "error": repr(exc),
                    },
                )
                if not batch:
                    return
                time.sleep(pause)
            else:
                for item in batch:
                    item.settle(True)
                return
