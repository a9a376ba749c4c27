"""Firing crons and scheduled runs (roost_core.engine.fire) from the scheduler's loop,
with their metrics and logs."""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from prometheus_client import Counter, Histogram

from roost_core import outbox
from roost_core.engine.fire import BATCH, Fired, Kind, fire_schedules, schedules_due, set_aside
from roost_core.engine.state import Definitions
from roost_core.service import RECOVERABLE
from roost_core.topology import Topology

logger = logging.getLogger(__name__)

FIRES = Counter(
    "roost_schedule_fires_total",
    "Runs started by crons and scheduled runs.",
    ["workflow", "kind"],
)
MISSES = Counter(
    "roost_cron_missed_total",
    "Cron fire times missed while every scheduler was down and not fired (catch_up).",
    ["workflow"],
)
SET_ASIDE = Counter(
    "roost_schedule_set_aside_total",
    "Crons (skipped to their next time) and scheduled runs (FAILED) that could not fire.",
    ["kind"],
)
FIRE_LAG = Histogram(
    "roost_schedule_fire_lag_seconds",
    "From a fire time to the commit of the run it started.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def fire_due(
    conn: psycopg.Connection[Any],
    topology: Topology,
    definitions: Definitions,
    relay: outbox.OutboxRelay,
    grace: float,
) -> int:
    """Fire every due cron and scheduled run (the caller found some due), a transaction
    per batch; return how many runs started.

    A batch that fails for a reason other than a lost database or broker (those go up:
    the scheduler reconnects) is fired again one at a time, so that the one that cannot
    fire is found and set aside (roost_core.engine.fire.set_aside) and the others fire."""
    started = 0
    while True:
        try:
            fired = _fire(conn, topology, definitions, relay, grace, BATCH, KINDS)
        except Exception as exc:
            if isinstance(exc, _LOST):
                raise
            logger.error(
                "firing schedules failed; firing them one at a time",
                extra={"action": "schedules_failed"},
                exc_info=True,
            )
            return started + _one_at_a_time(conn, topology, definitions, relay, grace)
        started += len(fired.started)
        # Less than a full batch: all that was due (and not another replica's) is done.
        if fired.locked < BATCH or not schedules_due(conn):
            break
    return started


KINDS: tuple[Kind, ...] = ("cron", "scheduled")
_LOST = (psycopg.OperationalError, *RECOVERABLE)


def _one_at_a_time(
    conn: psycopg.Connection[Any],
    topology: Topology,
    definitions: Definitions,
    relay: outbox.OutboxRelay,
    grace: float,
) -> int:
    started = 0
    for kind in KINDS:
        for _ in range(BATCH):
            try:
                fired = _fire(conn, topology, definitions, relay, grace, 1, (kind,))
            except Exception as exc:
                if isinstance(exc, _LOST):
                    raise
                error = f"{type(exc).__name__}: {exc}"
                with conn.transaction():
                    aside = set_aside(conn, kind, error)
                SET_ASIDE.labels(kind).inc()
                logger.error(
                    f"a {kind} could not fire and was set aside",
                    extra={"action": f"{kind}_set_aside", f"{kind}_id": aside, "error": error},
                )
                continue
            started += len(fired.started)
            if not fired.locked:
                break
    return started


def _fire(
    conn: psycopg.Connection[Any],
    topology: Topology,
    definitions: Definitions,
    relay: outbox.OutboxRelay,
    grace: float,
    limit: int,
    kinds: tuple[Kind, ...],
) -> Fired:
    with conn.transaction():
        fired = fire_schedules(conn, topology, definitions, grace, limit, kinds)
    # Committed: the runs exist, so their spans may end (the span store keeps only
    # spans of runs it knows).
    for span in fired.spans:
        span.end()
    relay.submit(fired.outbox_rows)
    committed = time.time()
    worst = 0.0
    for run in fired.started:
        lag = max(committed - run.due_at.timestamp(), 0.0)
        worst = max(worst, lag)
        FIRES.labels(run.workflow, run.kind).inc()
        FIRE_LAG.labels(run.kind).observe(lag)
        # One line per run only at DEBUG: 10,000 crons would make a line per fire noise.
        logger.debug(
            f"{run.kind} fired",
            extra={
                "action": f"{run.kind}_fired",
                "run_id": run.run_id,
                "workflow": run.workflow,
                f"{run.kind}_id": run.source_id,
                "lag_ms": round(lag * 1000),
            },
        )
    if fired.started:
        logger.info(
            "schedules fired",
            extra={
                "action": "schedules_fired",
                "runs": len(fired.started),
                "max_lag_ms": round(worst * 1000),
            },
        )
    for missed in fired.missed:
        MISSES.labels(missed.workflow).inc(missed.count)
        logger.warning(
            "cron fire times missed",
            extra={
                "action": "cron_missed",
                "cron_id": missed.cron_id,
                "cron": missed.name,
                "workflow": missed.workflow,
                "missed": missed.count,
                "capped": missed.capped,
            },
        )
    return fired
