"""What the consuming services (scheduler, ratelimiter) share: their ``main``
(:func:`run_until_stopped`), their connections for one consuming session
(:func:`consuming`), and the outer loop that, when the broker or the database goes
away, logs it and reconnects with backoff, never exiting (:func:`keep_running`)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import pika.exceptions
import psycopg
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from roost_core import broker, tracing
from roost_core.errors import BrokerUnavailableError, DatabaseUnavailableError
from roost_core.topology import Topology, declare_core

logger = logging.getLogger(__name__)

# What a lost dependency raises; anything else is a bug and ends the process.
RECOVERABLE = (
    pika.exceptions.AMQPError,
    psycopg.OperationalError,
    OSError,
    BrokerUnavailableError,
    DatabaseUnavailableError,
)


def keep_running(
    consume: Callable[[], None],
    stopping: threading.Event,
    *,
    name: str,
    on_lost: Callable[[], None] | None = None,
) -> None:
    """Call ``consume`` until ``stopping`` is set; after a recoverable error, call
    ``on_lost`` (forget unacknowledged work: the broker redelivers it) and try again,
    waiting 0.5 s, then twice as long each time, up to 10 s."""
    backoff = 0.5
    while not stopping.is_set():
        try:
            consume()
            backoff = 0.5
        except RECOVERABLE as exc:
            # A dependency still down when we retry raises again here: keep retrying.
            logger.warning(
                f"{name} lost a dependency; reconnecting",
                extra={"action": f"{name}_reconnect", "error": repr(exc)},
            )
            if on_lost is not None:
                on_lost()
            stopping.wait(backoff)
            backoff = min(backoff * 2, 10.0)


class Service(Protocol):
    """A consuming service: runs until :meth:`stop` (a signal handler) is called."""

    def run_forever(self) -> None: ...

    def stop(self, *_: Any) -> None: ...


def run_until_stopped(
    name: str, *, broker_url: str, namespace: str, make: Callable[[], Service]
) -> None:
    """The ``main`` of a consuming service: its spans go out through the broker, SIGTERM
    and SIGINT stop it after the work in hand, and its last spans are flushed."""
    tracing.setup(name, broker_url=broker_url, namespace=namespace)
    service = make()
    signal.signal(signal.SIGTERM, service.stop)
    signal.signal(signal.SIGINT, service.stop)
    service.run_forever()
    tracing.shutdown()


Consumer = Callable[[BlockingChannel, Any, Any, bytes], None]


@contextmanager
def consuming(
    database_url: str,
    broker_url: str,
    topology: Topology,
    *,
    queue: str,
    prefetch: int,
    on_message: Consumer,
    autocommit: bool = False,
) -> Iterator[tuple[psycopg.Connection[Any], BlockingConnection, BlockingChannel]]:
    """One consuming session: a database connection and a broker channel consuming
    ``queue`` (the core topology declared first, so a fresh broker works), both closed
    on the way out; :func:`keep_running` opens a new one after a lost dependency."""
    with psycopg.connect(database_url, autocommit=autocommit) as conn:
        connection = broker.connect(broker_url)
        try:
            channel = connection.channel()
            declare_core(channel, topology)
            channel.basic_qos(prefetch_count=prefetch)
            # The broker cancels a consumer whose queue it deletes or recovers (a restart
            # under load): without this the loop would go on with nothing to consume.
            channel.add_on_cancel_callback(lambda _frame: _cancelled(queue))
            channel.basic_consume(queue, on_message)
            yield conn, connection, channel
        finally:
            if connection.is_open:
                connection.close()


def pump(connection: BlockingConnection, channel: BlockingChannel, time_limit: float) -> None:
    """Deliver what has arrived (waiting up to ``time_limit`` s for something). A channel
    the broker closed (an error of ours, such as acking a delivery tag it does not know)
    raises, so :func:`keep_running` consumes again on a fresh one: otherwise the loop
    would go on with nothing to consume."""
    connection.process_data_events(time_limit=time_limit)
    if not channel.is_open:
        raise BrokerUnavailableError("the broker closed the consuming channel: consuming again")


def _cancelled(queue: str) -> None:
    raise BrokerUnavailableError(
        f"the broker cancelled the consumer of queue {queue!r}: consuming again"
    )
