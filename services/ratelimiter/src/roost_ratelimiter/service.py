"""The ratelimiter's loop: an admission pass whenever something may have changed (a
wake-up from RabbitMQ: tasks started waiting, units were freed, a limit changed), when a
window gives units back, and every few hundred milliseconds while anything waits, as a
safety net for a lost wake-up. Waiting attempts live in PostgreSQL, so a ratelimiter
that is killed and restarted loses nothing and admits nothing twice."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from pika.adapters.blocking_connection import BlockingChannel
from prometheus_client import Counter, Gauge, Histogram

from roost_core import metrics, outbox
from roost_core.engine.admit import admission_pass, anything_waits, prune
from roost_core.service import consuming, keep_running, pump
from roost_core.topology import Topology
from roost_ratelimiter.settings import RatelimiterSettings

logger = logging.getLogger(__name__)

ADMITTED = Counter("roost_ratelimiter_admitted", "Task attempts and runs admitted.")
CANCELLED = Counter(
    "roost_ratelimiter_cancelled",
    "Task attempts a full key's strategy cancelled (cancel_newest, cancel_in_progress).",
)
WAITING = Gauge(
    "roost_ratelimiter_waiting",
    "Attempts and runs the last pass left waiting (it looks at admission_batch per key).",
)
PASS_SECONDS = Histogram(
    "roost_ratelimiter_pass_seconds",
    "Time of one admission pass, commit included.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)

PRUNE_EVERY_SECONDS = 60.0
#: Seconds between looks for waiting work while nothing waits and no wake came.
IDLE_RECHECK_SECONDS = 5.0


class Ratelimiter:
    def __init__(self, settings: RatelimiterSettings) -> None:
        self.settings = settings
        self.topology = Topology(settings.namespace)
        self.relay = outbox.OutboxRelay(
            settings.broker_url, settings.database_url, name="ratelimiter-relay"
        )
        self.stopping = threading.Event()
        self._woken = False
        self._rotation = 0

    def run_forever(self) -> None:
        metrics.serve(self.settings.ratelimiter_metrics_port, "ratelimiter")
        self.relay.start()
        keep_running(self._consume, self.stopping, name="ratelimiter")
        self.relay.stop()

    def _consume(self) -> None:
        with consuming(
            self.settings.database_url,
            self.settings.broker_url,
            self.topology,
            queue=self.topology.ratelimiter_queue,
            prefetch=500,
            on_message=self._on_wake,
            autocommit=True,  # every change is in a transaction block; reads need none
        ) as (conn, connection, channel):
            logger.info("ratelimiter consuming", extra={"action": "ratelimiter_consuming"})
            next_pass = 0.0  # at once: whatever waited while no ratelimiter ran
            next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
            while not self.stopping.is_set():
                wait = max(0.0, next_pass - time.monotonic())
                pump(connection, channel, min(wait, 0.5))
                if self._woken or time.monotonic() >= next_pass:
                    self._woken = False
                    next_pass = time.monotonic() + self._pass(conn)
                if time.monotonic() >= next_prune:
                    with conn.transaction():
                        prune(conn)
                    next_prune = time.monotonic() + PRUNE_EVERY_SECONDS

    def _on_wake(self, channel: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        # A hint only: ack at once; the pass reads the truth from PostgreSQL.
        channel.basic_ack(method.delivery_tag)
        self._woken = True

    def _pass(self, conn: psycopg.Connection[Any]) -> float:
        """Run one pass; return the seconds until the next one is due."""
        if not anything_waits(conn):
            WAITING.set(0)
            # Whatever starts to wait sends a wake (admission.hold, and every change that
            # frees units): this look is only a safety net, so an idle ratelimiter asks
            # PostgreSQL every few seconds, not twice a second.
            return max(IDLE_RECHECK_SECONDS, self.settings.admission_interval_seconds)
        started = time.perf_counter()
        self._rotation += 1
        with conn.transaction():
            outcome = admission_pass(
                conn, self.topology, self.settings.admission_batch, self._rotation
            )
        self.relay.submit(outcome.outbox_rows)
        ADMITTED.inc(outcome.admitted)
        CANCELLED.inc(outcome.cancelled)
        PASS_SECONDS.observe(time.perf_counter() - started)
        WAITING.set(outcome.waiting)
        if outcome.admitted or outcome.failed or outcome.cancelled:
            logger.info(
                "admitted",
                extra={
                    "action": "admission_pass",
                    "admitted": outcome.admitted,
                    "failed": outcome.failed,
                    "cancelled": outcome.cancelled,
                    "waiting": outcome.waiting,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
        interval = self.settings.admission_interval_seconds
        if not outcome.waiting:
            return interval
        if outcome.next_refill is not None:
            # Be there the moment a window gives units back.
            return max(0.0, min(interval, outcome.next_refill - time.time() + 0.001))
        return interval

    def stop(self, *_: Any) -> None:
        self.stopping.set()
