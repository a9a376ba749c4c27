"""The outer loop of the consuming services (scheduler, ratelimiter): run, and when the
broker or the database goes away, log it and reconnect with backoff, never exit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pika.exceptions
import psycopg

from roost_core.errors import BrokerUnavailableError, DatabaseUnavailableError

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
