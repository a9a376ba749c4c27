"""Retention: deleting runs that ended long ago, so the tables stop growing.

One scheduler replica at a time (an advisory lock) deletes, every
``ROOST_RETENTION_INTERVAL_SECONDS``, the runs that reached a final state more than
``ROOST_RUN_RETENTION_DAYS`` ago, oldest first, in chunks of ``CHUNK`` runs per
transaction so that no transaction holds many locks or runs long. A run goes with its
task runs and attempts (foreign keys with ON DELETE CASCADE), and its events and spans
(tables without foreign keys, for the cost of checking them on every insert: deleted by
run id in the same transaction).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from roost_core.statuses import RunStatus
from roost_scheduler.periodic import Periodic

logger = logging.getLogger(__name__)

_LOCK_ID = 0x526F6F7374 + 2  # distinct from the migration and maintenance locks
CHUNK = 500
_FINAL = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED]


def delete_expired(conn: psycopg.Connection[Any], days: float, chunk: int = CHUNK) -> int:
    """Delete one chunk of runs that ended more than ``days`` ago; return how many."""
    with conn.transaction():
        row = conn.execute(
            "WITH gone AS ("
            "  DELETE FROM runs WHERE id IN ("
            "    SELECT id FROM runs"
            "    WHERE finished_at < now() - make_interval(secs => %s) AND status = ANY(%s)"
            "    ORDER BY finished_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            "  RETURNING id),"
            " events_gone AS (DELETE FROM events WHERE run_id IN (SELECT id FROM gone)),"
            " spans_gone AS (DELETE FROM spans WHERE run_id IN (SELECT id FROM gone))"
            " SELECT count(*) FROM gone",
            (days * 86400.0, _FINAL, chunk),
        ).fetchone()
    return int(row[0]) if row else 0


class Retention(Periodic):
    """A background thread of each scheduler replica (only one deletes at a time)."""

    name = "retention"

    def __init__(self, conninfo: str, days: float, interval: float) -> None:
        super().__init__(interval)
        self._conninfo = conninfo
        self._days = days

    def enabled(self) -> bool:
        return self._days > 0 and super().enabled()

    def _run(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_ID,)).fetchone()
            if not row or not row[0]:
                return  # another replica is at it
            deleted = 0
            try:
                while not self._stop.is_set():
                    n = delete_expired(conn, self._days)
                    deleted += n
                    if n < CHUNK:
                        break
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
        if deleted:
            logger.info(
                "expired runs deleted",
                extra={"action": "runs_expired", "count": deleted, "days": self._days},
            )
