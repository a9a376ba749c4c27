"""Prometheus metrics shared by every Roost process (prometheus-client).

Run and attempt counters are derived from the events a process appends to the event log
(``count``), so every outcome is counted exactly once, by the process whose transaction
recorded it: the scheduler for almost everything, the api for cancellations. Summing a
counter over every scheduler and api replica gives the fleet's total.

Each process serves its own registry: the api and the gateway at ``/metrics`` on their
HTTP port, the scheduler and the ratelimiter on a port of their own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import Counter, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from roost_core.events import (
    RUN_FINAL_TYPES,
    TASK_REDISPATCHED,
    TASK_STARTED,
    Event,
    EventBatch,
)
from roost_core.outbox import OutboxRow
from roost_core.topology import EVENTS_APPENDED

logger = logging.getLogger(__name__)

RUNS_FINISHED = Counter(
    "roost_runs_finished",
    "Runs that reached a final state, by workflow and state.",
    ["workflow", "status"],
)
TASK_ATTEMPTS = Counter(
    "roost_task_attempts",
    "Task attempts that ended, by workflow and outcome (succeeded, failed, timed_out,"
    " retrying: failed with a retry to come, cancelled).",
    ["workflow", "outcome"],
)
TASK_DURATION = Histogram(
    "roost_task_duration_seconds",
    "How long succeeded task attempts ran on their worker.",
    ["workflow"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)

TASKS_REDISPATCHED = Counter(
    "roost_tasks_redispatched",
    "Queued attempts whose task message was lost (in no queue, held by no live worker)"
    " and that the scheduler's safety net sent again.",
    ["workflow"],
)

QUEUE_WAIT = Histogram(
    "roost_task_queue_wait_seconds",
    "How long task attempts waited between being queued (ready, or due for a retry) and"
    " starting on a worker, rate-limit admission included.",
    ["workflow"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

_ATTEMPT_OUTCOMES = {
    "task.succeeded": "succeeded",
    "task.failed": "failed",
    "task.timed_out": "timed_out",
    "task.retrying": "retrying",
    "task.cancelled": "cancelled",
}


def count(events: Iterable[Event]) -> None:
    """Count the runs and attempts that ``events`` (just committed) ended."""
    for event in events:
        if event.type == TASK_STARTED:
            wait = event.data.get("queue_wait") if isinstance(event.data, dict) else None
            if isinstance(wait, int | float):
                QUEUE_WAIT.labels(event.workflow).observe(wait)
            continue
        if event.type == TASK_REDISPATCHED:
            TASKS_REDISPATCHED.labels(event.workflow).inc()
            continue
        if event.type in RUN_FINAL_TYPES:
            RUNS_FINISHED.labels(event.workflow, event.type.removeprefix("run.")).inc()
            continue
        outcome = _ATTEMPT_OUTCOMES.get(event.type)
        if outcome is None:
            continue
        if outcome == "cancelled" and event.attempt is None:
            continue  # never started: no attempt ended
        TASK_ATTEMPTS.labels(event.workflow, outcome).inc()
        if outcome == "succeeded" and isinstance(event.data, dict):
            duration = event.data.get("duration")
            if isinstance(duration, int | float) and duration >= 0:
                TASK_DURATION.labels(event.workflow).observe(duration)


def count_rows(rows: Iterable[OutboxRow]) -> None:
    """:func:`count` the events broadcast by committed outbox rows (for a process that
    has only the rows at hand)."""
    for row in rows:
        if row.message.routing_key == EVENTS_APPENDED:
            count(EventBatch.model_validate_json(row.message.body).events)


def serve(port: int, name: str) -> None:
    """Serve this process's metrics on ``port`` (0: not at all). A port already taken
    (a second replica on one host) is logged, not fatal: the process works without."""
    if port <= 0:
        return
    try:
        server = make_server("0.0.0.0", port, make_wsgi_app(), ThreadingWSGIServer, _Quiet)
    except OSError as exc:
        logger.warning(
            f"{name} cannot serve metrics on port {port}: {exc}",
            extra={"action": "metrics_unavailable", "port": port},
        )
        return
    # prometheus_client's start_http_server serves with socketserver's default poll
    # interval (0.5 s): two wake-ups a second in an idle process for a shutdown it never
    # asks for. This one only wakes for a scrape.
    threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": _NEVER},
        name=f"{name}-metrics",
        daemon=True,
    ).start()
    logger.info(f"{name} metrics on :{port}/metrics", extra={"action": "metrics_serving"})


#: socketserver's poll interval only bounds how fast ``shutdown()`` is noticed.
_NEVER = 3600.0


class _Quiet(WSGIRequestHandler):
    """No access log line on stderr per scrape."""

    def log_message(self, *args: Any) -> None:
        pass
