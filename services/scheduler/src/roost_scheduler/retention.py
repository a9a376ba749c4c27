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

from roost_core.queries import SQL as CORE_SQL
from roost_core.statuses import RunStatus
from roost_scheduler.periodic import Periodic
from roost_scheduler.statements import SQL

logger = logging.getLogger(__name__)

_LOCK_ID = 0x526F6F7374 + 2  # distinct from the migration and maintenance locks
CHUNK = 500
_FINAL = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED]
_TRY_LOCK = CORE_SQL.try_advisory_lock
_UNLOCK = CORE_SQL.advisory_unlock
_DELETE_EXPIRED = SQL.delete_expired_runs


def delete_expired(conn: psycopg.Connection[Any], days: float, chunk: int = CHUNK) -> int:
    """Delete one chunk of runs that ended more than ``days`` ago; return how many."""
    with conn.transaction():
        row = conn.execute(
            _DELETE_EXPIRED, {"seconds": days * 86400.0, "statuses": _FINAL, "limit": chunk}
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
            row = conn.execute(_TRY_LOCK, {"lock_id": _LOCK_ID}).fetchone()
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
                conn.execute(_UNLOCK, {"lock_id": _LOCK_ID})
        if deleted:
            logger.info(
                "expired runs deleted",
                extra={"action": "runs_expired", "count": deleted, "days": self._days},
            )
