"""Keeping the hot tables fast when PostgreSQL's autovacuum cannot.

The outbox is a queue table (every row inserted, then deleted within milliseconds), and
task runs are updated two or three times each: without vacuum, dead tuples pile up and
the hot statements slow down; without statistics, the planner picks sequential scans.
With autovacuum on, migration 0003 makes it visit the outbox early. With autovacuum off
(as on some test and managed servers), one scheduler replica at a time, chosen by an
advisory lock, does autovacuum's analyze itself: every :data:`CHECK_SECONDS` it reads
PostgreSQL's change counters and analyzes each hot table that changed enough
(:func:`to_analyze`), and every ``ROOST_MAINTENANCE_INTERVAL_SECONDS`` it vacuums the
outbox.

Why so soon (issue #17): a table never analyzed is planned from its size alone, and
`runs.id = ANY(...)` became a sequential scan of runs: each scheduler batch slowed as
runs grew, until the first analyze 30 s in (the "bimodal" W1 bulk figure: 140-175 or
~420 runs/s, by whether that analyze had come). Measured before that: after 4,000 runs
with autovacuum off, a 4-task run took 45 ms end to end instead of 27 ms.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from roost_core.queries import SQL as CORE_SQL
from roost_scheduler.periodic import Periodic
from roost_scheduler.statements import SQL

logger = logging.getLogger(__name__)

_LOCK_ID = 0x526F6F7374 + 1  # distinct from the migration lock
_TRY_LOCK = CORE_SQL.try_advisory_lock
_UNLOCK = CORE_SQL.advisory_unlock
_AUTOVACUUM = SQL.autovacuum_setting
_CHANGES = SQL.hot_table_changes
_VACUUM_OUTBOX = SQL.vacuum_outbox
_ANALYZE = {
    "runs": SQL.analyze_runs,
    "task_runs": SQL.analyze_task_runs,
    "events": SQL.analyze_events,
    "spans": SQL.analyze_spans,
}

#: How often the change counters are read (one catalog read; nothing else when idle).
CHECK_SECONDS = 2.0
#: Rows changed before any table is analyzed again (autovacuum's analyze_threshold).
THRESHOLD = 50
#: Per table, the share of its rows that must change before it is analyzed again
#: (autovacuum's analyze_scale_factor). Runs and task runs: their status mix is what
#: the hot statements are planned on. Events and spans only ever need "many rows, few
#: per run": again once they have doubled (ANALYZE spans took 0.4-1.2 s here).
SCALE = {"runs": 0.2, "task_runs": 0.2, "events": 1.0, "spans": 1.0}


@dataclass(frozen=True)
class TableChanges:
    name: str
    analyzed_rows: float  # rows at its last ANALYZE (pg_class.reltuples); -1: never
    changed: int  # rows inserted, updated or deleted since (n_mod_since_analyze)


def to_analyze(tables: Iterable[TableChanges]) -> list[str]:
    """The tables that changed enough since their last ANALYZE to need another: a
    never-analyzed table once :data:`THRESHOLD` rows changed, else once that plus its
    :data:`SCALE` share of the rows it had."""
    return [
        t.name
        for t in tables
        if t.changed >= THRESHOLD + SCALE.get(t.name, 0.2) * max(t.analyzed_rows, 0.0)
    ]


class Maintenance(Periodic):
    """A background thread, so that a VACUUM never holds up the consumer."""

    name = "maintenance"

    def __init__(self, conninfo: str, interval: float) -> None:
        super().__init__(min(CHECK_SECONDS, interval) if interval > 0 else 0.0)
        self._conninfo = conninfo
        self._vacuum_every = interval
        self._vacuumed = time.monotonic()
        self._needed: bool | None = None  # unknown until the first check
        self._conn: psycopg.Connection[Any] | None = None

    def _run(self) -> None:
        if self._autovacuum_on():
            return  # PostgreSQL does it all, now and later
        try:
            self._maintain(self._connection())
        except psycopg.Error:
            self._close()  # the next round connects afresh
            raise
        if self._autovacuum_on():
            self._close()

    def _autovacuum_on(self) -> bool:
        return self._needed is False

    def _connection(self) -> psycopg.Connection[Any]:
        # One connection for every round: a round every 2 s must not fork a PostgreSQL
        # backend each time (what an idle stack costs, issue #17). Autocommit: VACUUM
        # cannot run in a transaction.
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def _maintain(self, conn: psycopg.Connection[Any]) -> None:
        if self._needed is None:
            row = conn.execute(_AUTOVACUUM).fetchone()
            self._needed = not row or row[0] != "on"
            if self._needed:
                logger.info(
                    "autovacuum is off: the scheduler maintains the hot tables",
                    extra={"action": "maintenance_enabled"},
                )
        if not self._needed:
            return
        changes = [
            TableChanges(str(name), float(rows), int(changed))
            for name, rows, changed in conn.execute(_CHANGES, {"tables": list(_ANALYZE)})
        ]
        work = [_ANALYZE[name] for name in to_analyze(changes)]
        if time.monotonic() - self._vacuumed >= self._vacuum_every:
            work.append(_VACUUM_OUTBOX)
        if not work:
            return
        row = conn.execute(_TRY_LOCK, {"lock_id": _LOCK_ID}).fetchone()
        if not row or not row[0]:
            return  # another replica is at it
        started = time.perf_counter()
        try:
            for statement in work:
                conn.execute(statement)
            if _VACUUM_OUTBOX in work:
                self._vacuumed = time.monotonic()
        finally:
            conn.execute(_UNLOCK, {"lock_id": _LOCK_ID})
        logger.info(
            "hot tables maintained",
            extra={
                "action": "maintenance_done",
                "ms": round((time.perf_counter() - started) * 1000),
                "statements": len(work),
            },
        )
