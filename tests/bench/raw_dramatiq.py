"""The raw-Dramatiq side of W1: four no-op actors chained with ``dramatiq.pipeline``.

Workers run ``dramatiq bench.raw_dramatiq:broker --processes P --threads T``; bench.py
imports this module to enqueue. Settings come from the environment (both sides share it):

- BENCH_RAW_BROKER_URL: the AMQP URL (the stack's RabbitMQ vhost);
- BENCH_RAW_QUEUE: the queue name, unique per benchmark run;
- BENCH_RAW_OUT: a folder where the last actor appends ``<tag> <time.time()>`` lines,
  one file per worker process (O_APPEND writes of one short line are atomic).
"""

from __future__ import annotations

import logging
import os
import threading
import time

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

logging.getLogger("pika").setLevel(logging.WARNING)

BROKER_URL = os.environ.get("BENCH_RAW_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
QUEUE = os.environ.get("BENCH_RAW_QUEUE", "rawbench")
OUT_DIR = os.environ.get("BENCH_RAW_OUT", "/tmp")

# Publisher confirms, as Roost's workers use for their reports. The default middleware
# (which includes Pipelines) is kept.
broker = RabbitmqBroker(url=BROKER_URL, confirm_delivery=True)
dramatiq.set_broker(broker)

_lock = threading.Lock()
_fd: int | None = None
_fd_pid = 0


def _out() -> int:
    global _fd, _fd_pid
    with _lock:
        if _fd is None or _fd_pid != os.getpid():
            _fd_pid = os.getpid()
            _fd = os.open(
                os.path.join(OUT_DIR, f"done-{_fd_pid}.log"),
                os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                0o644,
            )
        return _fd


@dramatiq.actor(queue_name=QUEUE, actor_name="raw_a1", broker=broker)
def a1(tag: str) -> str:
    return tag


@dramatiq.actor(queue_name=QUEUE, actor_name="raw_a2", broker=broker)
def a2(tag: str) -> str:
    return tag


@dramatiq.actor(queue_name=QUEUE, actor_name="raw_a3", broker=broker)
def a3(tag: str) -> str:
    return tag


@dramatiq.actor(queue_name=QUEUE, actor_name="raw_a4", broker=broker)
def a4(tag: str) -> None:
    os.write(_out(), f"{tag} {time.time():.6f}\n".encode())


def pipeline(tag: str) -> dramatiq.pipeline:
    """The four actors in a line; each hands its result (the tag) to the next."""
    return dramatiq.pipeline(
        [a1.message(tag), a2.message(), a3.message(), a4.message()], broker=broker
    )


def finished(tag: str) -> tuple[int, float | None]:
    """How many pipelines tagged ``tag`` have finished, and the latest finish time."""
    count, latest = 0, None
    for name in os.listdir(OUT_DIR):
        if not name.startswith("done-"):
            continue
        with open(os.path.join(OUT_DIR, name)) as f:
            for line in f:
                parts = line.split()
                # A line still being written (no newline yet) is left for the next look.
                if line.endswith("\n") and len(parts) == 2 and parts[0] == tag:
                    count += 1
                    t = float(parts[1])
                    latest = t if latest is None or t > latest else latest
    return count, latest
