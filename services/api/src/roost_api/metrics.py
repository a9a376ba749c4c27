"""The api's Prometheus metrics: ``GET /metrics`` (no token: counts only, no run data).

Besides the counters every process keeps (roost_core.metrics; the api counts the runs
and attempts it cancels), the api reports fleet-wide gauges read from PostgreSQL: worker
processes alive and their slots, tasks waiting on each rate-limit key, and outbox rows
not yet confirmed by RabbitMQ; and from RabbitMQ, the attempts ready on each workflow's
task queue. They are read when a scrape asks for them (at most once per
``metrics_refresh_seconds``; scrapes in between get the same values), so an api nobody
scrapes reads nothing (issue #17's idle budget). Every api replica reports the same
values; take the max, not the sum.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pika.exceptions
import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response

from roost_api.statements import SQL
from roost_core.errors import BrokerUnavailableError

logger = logging.getLogger(__name__)

_CAPACITY = SQL.worker_capacity
_WAITING = SQL.waiting_per_key
_OUTBOX_DEPTH = SQL.outbox_depth
_WORKFLOW_NAMES = SQL.workflow_names

RUNS_TRIGGERED = Counter(
    "roost_runs_triggered", "Runs created by triggers, by workflow.", ["workflow"]
)
TRIGGER_BATCH = Histogram(
    "roost_trigger_batch_size",
    "Single-trigger requests committed per transaction: concurrent triggers of one"
    " workflow share one (roost_api.trigger_batch).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 100),
)
ACCEPT_BATCH = Histogram(
    "roost_accept_batch_size",
    "Accepted triggers (Prefer: respond-async) published per AMQP transaction:"
    " concurrent ones share one (roost_api.accept).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 200),
)
WORKERS_ALIVE = Gauge(
    "roost_workers_alive", "Worker processes heard from recently and taking work."
)
WORKERS_DRAINING = Gauge(
    "roost_workers_draining", "Worker processes asked to stop, finishing their running tasks."
)
WORKER_SLOTS = Gauge(
    "roost_worker_slots", "Task slots of the live worker processes, by state.", ["state"]
)
RATE_LIMIT_WAITING = Gauge(
    "roost_rate_limit_waiting", "Task attempts waiting for units of a rate-limit key.", ["key"]
)
OUTBOX_DEPTH = Gauge("roost_outbox_depth", "Committed messages not yet confirmed by RabbitMQ.")
TASKS_READY = Gauge(
    "roost_tasks_ready",
    "Task attempts ready on each workflow's queue, waiting for a worker (RabbitMQ's count).",
    ["workflow", "queue"],
)


async def metrics_endpoint(request: Request) -> Response:
    await request.app.state.gauges.fresh()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _refresh(conn: psycopg.AsyncConnection[Any], heartbeat_timeout: float) -> None:
    cur = await conn.execute(_CAPACITY, {"timeout": heartbeat_timeout})
    row = await cur.fetchone()
    alive, draining, slots, alive_busy, busy = row if row else (0, 0, 0, 0, 0)
    WORKERS_ALIVE.set(alive)
    WORKERS_DRAINING.set(draining)
    WORKER_SLOTS.labels("busy").set(busy)
    WORKER_SLOTS.labels("free").set(max(0, slots - alive_busy))
    cur = await conn.execute(_WAITING)
    waiting = dict(await cur.fetchall())
    RATE_LIMIT_WAITING.clear()
    for key, count in waiting.items():
        RATE_LIMIT_WAITING.labels(key).set(count)
    cur = await conn.execute(_OUTBOX_DEPTH)
    row = await cur.fetchone()
    OUTBOX_DEPTH.set(row[0] if row else 0)


async def _refresh_queues(
    conn: psycopg.AsyncConnection[Any],
    ready_counts: Callable[[list[str]], dict[str, int]],
    task_queue: Callable[[str], str],
) -> None:
    cur = await conn.execute(_WORKFLOW_NAMES)
    names = [row[0] for row in await cur.fetchall()]
    counts = await asyncio.to_thread(ready_counts, names)
    TASKS_READY.clear()
    for workflow, count in counts.items():
        TASKS_READY.labels(workflow, task_queue(workflow)).set(count)


class FleetGauges:
    """Reads the fleet-wide gauges for a scrape, unless a scrape less than ``every``
    seconds ago already did. A database or broker that is away keeps the last values
    (logged): the scrape still answers."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        every: float,
        heartbeat_timeout: float,
        ready_counts: Callable[[list[str]], dict[str, int]],
        task_queue: Callable[[str], str],
    ) -> None:
        self._pool = pool
        self._every = every
        self._heartbeat_timeout = heartbeat_timeout
        self._ready_counts = ready_counts
        self._task_queue = task_queue
        self._lock = asyncio.Lock()  # concurrent scrapes: one read, all wait for it
        self._read_at = -math.inf

    async def fresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._read_at < self._every:
                return
            try:
                async with self._pool.connection() as conn:
                    await _refresh(conn, self._heartbeat_timeout)
                    await _refresh_queues(conn, self._ready_counts, self._task_queue)
            except (psycopg.Error, OSError) as exc:  # the database is away: keep last values
                logger.warning("metrics refresh failed", extra={"error": repr(exc)})
            except (pika.exceptions.AMQPError, BrokerUnavailableError) as exc:
                logger.warning("queue metrics refresh failed", extra={"error": repr(exc)})
            self._read_at = time.monotonic()
