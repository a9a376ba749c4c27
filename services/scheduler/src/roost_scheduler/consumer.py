"""The scheduler's main loop: drain worker reports from RabbitMQ in natural batches,
apply each batch in one PostgreSQL transaction, acknowledge after commit, then hand the
batch's outbox rows to the relay. The same batches create the runs the api accepted
without writing them (roost_core.engine.accepted).

Batches form by draining what has already arrived, never by waiting to fill one, so
batching adds no latency. Several replicas may consume the same queue: every run a batch
touches is row-locked in id order."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from pika.adapters.blocking_connection import BlockingChannel
from prometheus_client import Histogram
from pydantic import ValidationError

from roost_core import metrics, outbox, pipelined
from roost_core.engine.accepted import create_accepted
from roost_core.engine.child_waits import match_child_waits
from roost_core.engine.event_waits import match_event_waits
from roost_core.engine.reports import apply_reports
from roost_core.engine.state import BatchOutcome, Definitions
from roost_core.engine.stranded import any_stranded, place_stranded
from roost_core.engine.timers import attempts_lost, fire_timers, reclaim_lost_attempts, work_due
from roost_core.engine.workers import record_heartbeats
from roost_core.service import consuming, keep_running, pump
from roost_core.topology import (
    RUN_ACCEPTED,
    TASK_CANCEL_REQUEST,
    TASK_EMITTED,
    TASK_REPORTS,
    WORKER_HEARTBEAT,
    Topology,
)
from roost_core.wire import (
    RunAccepted,
    TaskCancelRequest,
    TaskEmitted,
    TaskReport,
    WorkerHeartbeat,
    decode_report,
    decode_report_batch,
)
from roost_scheduler.maintenance import Maintenance
from roost_scheduler.redispatch import LostMessages
from roost_scheduler.retention import Retention
from roost_scheduler.schedules import fire_due
from roost_scheduler.settings import SchedulerSettings

logger = logging.getLogger(__name__)

BATCH_SIZE = Histogram(
    "roost_scheduler_batch_size",
    "Worker reports applied per transaction (natural batches: what had arrived).",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
BATCH_SECONDS = Histogram(
    "roost_scheduler_batch_seconds",
    "Time to apply and commit one batch of reports.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


class Scheduler:
    def __init__(self, settings: SchedulerSettings) -> None:
        self.settings = settings
        self.topology = Topology(settings.namespace)
        self.definitions = Definitions()
        self.relay = outbox.OutboxRelay(
            settings.broker_url, settings.database_url, name="scheduler-relay"
        )
        self.sweep_publisher = outbox.Publisher(settings.broker_url)
        self.maintenance = Maintenance(settings.database_url, settings.maintenance_interval_seconds)
        self.retention = Retention(
            settings.database_url, settings.run_retention_days, settings.retention_interval_seconds
        )
        self.lost_messages = LostMessages(settings, self.relay)
        self.stopping = threading.Event()
        self._next_liveness = 0.0
        self._buffer: list[tuple[int, str, bytes]] = []

    def run_forever(self) -> None:
        """Consume until stopped, reconnecting to whichever dependency went away."""
        metrics.serve(self.settings.scheduler_metrics_port, "scheduler")
        self.relay.start()
        self.maintenance.start()
        self.retention.start()
        self.lost_messages.start()
        # Never exits on a lost dependency: the sweeper lives in this process. Reports
        # buffered but unacknowledged are redelivered by the broker.
        keep_running(self._consume, self.stopping, name="scheduler", on_lost=self._forget)
        self.relay.stop()
        self.maintenance.stop()
        self.retention.stop()
        self.lost_messages.stop()
        self.sweep_publisher.close()

    def _consume(self) -> None:
        with consuming(
            self.settings.database_url,
            self.settings.broker_url,
            self.topology,
            queue=self.topology.scheduler_queue,
            prefetch=self.settings.scheduler_prefetch,
            on_message=self._on_message,
            autocommit=True,  # every change is in a transaction block; reads need none
        ) as (conn, connection, channel):
            logger.info(
                "scheduler consuming",
                extra={"action": "scheduler_consuming", "queue": self.topology.scheduler_queue},
            )
            next_sweep = next_timers = 0.0
            tick = min(0.5, self.settings.timer_interval_seconds)
            more = False  # the last timer pass fired a full batch: go on at once
            while not self.stopping.is_set():
                pump(connection, channel, 0 if more else tick)
                if self._buffer:
                    # Take whatever else has already arrived, without waiting.
                    pump(connection, channel, 0)
                    batch, self._buffer = self._buffer, []
                    self._handle(conn, channel, batch)
                now = time.monotonic()
                if now >= next_timers or more:
                    more = self._fire_timers(conn)
                    next_timers = now + self.settings.timer_interval_seconds
                if now >= next_sweep:
                    grace = self.settings.sweep_grace_seconds
                    if outbox.stranded(conn, grace):
                        outbox.sweep(conn, self.sweep_publisher, grace)
                    next_sweep = now + self.settings.sweep_interval_seconds

    def _isolate(
        self,
        conn: psycopg.Connection[Any],
        channel: BlockingChannel,
        batch: list[tuple[int, str, bytes]],
    ) -> None:
        """A batch with accepted runs failed (nothing of it committed). A run that cannot
        be created would fail every batch it is in, at every redelivery, and stop the
        engine: apply the batch again one message at a time, in delivery order (so that
        each acknowledgement covers only what is settled), and dead-letter (to the
        scheduler's dead queue, for a human) the accepted run that fails by itself."""
        if len(batch) == 1:
            logger.exception(
                "an accepted run that cannot be created dead-lettered",
                extra={"action": "accepted_dead_lettered", "body": batch[0][2][:500]},
            )
            channel.basic_nack(batch[0][0], requeue=False)
            return
        for item in sorted(batch):
            self._handle(conn, channel, [item])

    def _forget(self) -> None:
        """Drop what a lost connection delivered: the broker redelivers it, and its
        delivery tags mean nothing on the next connection. (The buffer is replaced, not
        cleared in place, whenever a batch is taken: forget whichever is current.)"""
        self._buffer = []

    def _on_message(self, channel: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        self._buffer.append((method.delivery_tag, method.routing_key, body))

    def _handle(
        self,
        conn: psycopg.Connection[Any],
        channel: BlockingChannel,
        batch: list[tuple[int, str, bytes]],
    ) -> None:
        reports: list[TaskReport] = []
        beats: list[WorkerHeartbeat] = []
        emitted: list[TaskEmitted] = []
        cancels: list[TaskCancelRequest] = []
        accepted: list[RunAccepted] = []
        accepted_tags: set[int] = set()
        good_tags: list[int] = []
        for tag, key, body in batch:
            try:
                if key == WORKER_HEARTBEAT:
                    beats.append(WorkerHeartbeat.model_validate_json(body))
                elif key == TASK_REPORTS:
                    results, lines = decode_report_batch(body)
                    reports += results
                    emitted += lines
                elif key == TASK_EMITTED:
                    emitted.append(TaskEmitted.model_validate_json(body))
                elif key == TASK_CANCEL_REQUEST:
                    cancels.append(TaskCancelRequest.model_validate_json(body))
                elif key == RUN_ACCEPTED:
                    accepted.append(RunAccepted.model_validate_json(body))
                    accepted_tags.add(tag)
                else:
                    reports.append(decode_report(body))
                good_tags.append(tag)
            except ValidationError as exc:
                # A malformed report can never apply: dead-letter it rather than loop.
                logger.error(
                    "malformed report dead-lettered",
                    extra={"action": "report_malformed", "body": body[:500], "error": str(exc)},
                )
                channel.basic_nack(tag, requeue=False)
        if not good_tags:
            return
        started = time.perf_counter()
        # Pipelined: statements whose rows nothing reads (BEGIN, the heartbeats, marking
        # runs running) go out with the next one instead of costing a round trip each,
        # and the batch's last statement with the COMMIT (roost_core.pipelined).
        try:
            with pipelined.transaction(conn):
                record_heartbeats(conn, beats, self.settings.worker_heartbeat_timeout_seconds)
                # First the runs, then the reports: none can be of a run not yet created.
                created = create_accepted(
                    conn,
                    self.topology,
                    self.definitions,
                    accepted,
                    deferred=not (reports or emitted or cancels),
                )
                outcome = (
                    apply_reports(
                        conn,
                        self.topology,
                        self.definitions,
                        reports,
                        emitted,
                        cancels,
                        deferred=True,
                    )
                    if reports or emitted or cancels
                    else BatchOutcome([], [], 0, 0)
                )
            # The rows of the batch's last statement, answered with the COMMIT.
            outcome.complete()
            created.complete()
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise  # the database went away: consume again; RabbitMQ redelivers the batch
        except Exception:
            if not accepted_tags:
                raise
            self._isolate(conn, channel, batch)
            return
        # Committed. The next tasks' messages first (they are a hand-off's critical path,
        # the relay publishes them on its own thread), then, and only now, acknowledge
        # the whole batch.
        self.relay.submit(created.outbox_rows + outcome.outbox_rows)
        channel.basic_ack(max(good_tags), multiple=True)
        for span in created.spans:
            span.end()
        BATCH_SIZE.observe(len(batch))
        BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.count(outcome.events)
        logger.debug(
            "batch applied",
            extra={
                "action": "batch_applied",
                "size": len(batch),
                "applied": outcome.applied,
                "ignored": outcome.ignored,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        for run_id, status in outcome.finished_runs:
            logger.info(
                "run finished", extra={"action": "run_finished", "run_id": run_id, "status": status}
            )

    def _fire_timers(self, conn: psycopg.Connection[Any]) -> bool:
        """Retries whose backoff is over, attempts past a deadline, due crons and
        scheduled runs, durable tasks' event waits that an event may end, and their
        waits for child runs that may be over. Durable: the timers are rows, so a
        restarted scheduler fires what its predecessor did not. Returns whether it did
        anything: then the loop comes back at once, not a tick later, so that a burst
        (ten thousand sleepers due at one time) goes out batch after batch."""
        # The reads first, outside any transaction: idle, that is all this costs.
        outcome = BatchOutcome([], [], 0, 0)
        busy = 0
        due = work_due(conn)
        if due.timers:
            with conn.transaction():
                outcome = fire_timers(conn, self.topology, self.definitions)
        if due.events:  # durable tasks waiting for an event that may have come
            with conn.transaction():
                matched = match_event_waits(conn, self.topology, self.definitions)
            busy += matched.applied
            self.relay.submit(matched.outbox_rows)
            metrics.count(matched.events)
        if due.children:  # durable tasks waiting for child runs, one of which ended
            with conn.transaction():
                joined = match_child_waits(conn, self.topology, self.definitions)
            busy += joined.applied
            self.relay.submit(joined.outbox_rows)
            metrics.count(joined.events)
        if due.schedules:  # crons and scheduled runs (the same tick: their precision)
            fire_due(
                conn,
                self.topology,
                self.definitions,
                self.relay,
                self.settings.cron_misfire_grace_seconds,
            )
        now = time.monotonic()
        if now >= self._next_liveness:
            self._next_liveness = now + 1.0
            self._reclaim_lost(conn)
        self.relay.submit(outcome.outbox_rows)
        metrics.count(outcome.events)
        if outcome.applied:
            logger.info("timers fired", extra={"action": "timers_fired", "count": outcome.applied})
        for run_id, status in outcome.finished_runs:
            logger.info(
                "run finished", extra={"action": "run_finished", "run_id": run_id, "status": status}
            )
        return bool(outcome.applied or busy)

    def _reclaim_lost(self, conn: psycopg.Connection[Any]) -> None:
        """Attempts of workers gone silent go to other workers; so do those placed on
        a gone worker's own queue (or they fail: a hard-sticky run's)."""
        if any_stranded(conn):
            with conn.transaction():
                placed = place_stranded(conn, self.topology, self.definitions)
            self.relay.submit(placed.outbox_rows)
            metrics.count(placed.events)
            if placed.applied:
                logger.warning(
                    "attempts placed on gone workers placed again",
                    extra={"action": "stranded_placed", "count": placed.applied},
                )
        timeout = self.settings.worker_heartbeat_timeout_seconds
        if not attempts_lost(conn, timeout):
            return
        with conn.transaction():
            lost = reclaim_lost_attempts(conn, self.topology, self.definitions, timeout)
        self.relay.submit(lost.outbox_rows)
        metrics.count(lost.events)
        if lost.applied:
            logger.warning(
                "attempts of lost workers handed to others",
                extra={"action": "worker_lost", "count": lost.applied},
            )

    def stop(self, *_: Any) -> None:
        self.stopping.set()
