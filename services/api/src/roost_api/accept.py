"""Accepting a trigger into RabbitMQ (issue #17): the api's answer to
``Prefer: respond-async``.

A client that will not wait for its run's result need not wait for PostgreSQL either:
the run is durable once RabbitMQ has confirmed its :class:`~roost_core.wire.RunAccepted`
on the scheduler's durable queue, and the scheduler creates it (a batch of runs per
transaction, roost_core.engine.accepted). A loop of such triggers then costs each one a
publish instead of a transaction, and their runs are created together.

One thread publishes, as the outbox relay does (pika's connection is blocking and not
thread-safe). Requests that arrive while it waits for RabbitMQ go in its next AMQP
transaction together (group commit, as roost_api.trigger_batch does for PostgreSQL),
and each request is answered only once its message is held: a request whose publish
failed gets the error, and its run id means nothing.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass

from roost_api import metrics as api_metrics
from roost_core import outbox
from roost_core.topology import RUN_ACCEPTED, Topology
from roost_core.wire import RunAccepted

logger = logging.getLogger(__name__)

#: Most messages one AMQP transaction carries; more wait for the next.
MAX_BATCH = 200


@dataclass
class _Pending:
    message: outbox.OutboxMessage
    done: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


class Acceptor:
    """Publishes accepted runs with RabbitMQ's confirmation, many per round trip."""

    def __init__(self, broker_url: str, topology: Topology) -> None:
        self._broker_url = broker_url
        self._topology = topology
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="api-acceptor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    async def accept(self, run: RunAccepted) -> None:
        """Return once RabbitMQ holds ``run``'s message (raises if it could not)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        body = run.model_dump_json(exclude_none=True).encode()
        message = outbox.OutboxMessage(self._topology.events_exchange, RUN_ACCEPTED, body)
        self._queue.put(_Pending(message, done, loop))
        # Shielded: a client that goes away leaves its run accepted (or not) all the same.
        await asyncio.shield(done)

    def _run(self) -> None:
        publisher = outbox.Publisher(self._broker_url)
        try:
            while (first := self._queue.get()) is not None:
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._queue.put(None)  # stop after this batch
                        break
                    batch.append(more)
                self._publish(publisher, batch)
        finally:
            publisher.close()

    @staticmethod
    def _publish(publisher: outbox.Publisher, batch: list[_Pending]) -> None:
        error: BaseException | None = None
        try:
            publisher.publish_batch([p.message for p in batch])
            api_metrics.ACCEPT_BATCH.observe(len(batch))
        except Exception as exc:  # each request answers with what went wrong
            logger.warning(
                "accepted runs could not be published",
                extra={"action": "accept_failed", "runs": len(batch), "error": repr(exc)},
            )
            publisher.close()
            error = exc
        for pending in batch:
            pending.loop.call_soon_threadsafe(_settle, pending.done, error)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
        done.add_done_callback(lambda f: f.exception())  # read, if its request went away
