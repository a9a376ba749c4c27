"""Sending again the task messages of QUEUED attempts whose messages were lost (the
scheduler's safety net, roost_scheduler.redispatch, finds them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from roost_core import outbox
from roost_core.engine.batch import close_batch
from roost_core.engine.ready import dispatch_ready
from roost_core.engine.state import BatchOutcome, Conn, Definitions, lock_runs
from roost_core.events import TASK_REDISPATCHED
from roost_core.queries import SQL
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.topology import Topology

_RUNS_OF = SQL.runs_of_task_runs
_REQUEUE = SQL.requeue_lost_attempts


class Lost(Protocol):
    """An attempt whose message is gone."""

    @property
    def task_run_id(self) -> str: ...

    @property
    def attempt(self) -> int: ...


def redispatch(
    conn: Conn, topology: Topology, definitions: Definitions, lost: Sequence[Lost]
) -> BatchOutcome:
    """Send the task messages of ``lost`` attempts again, inside the caller's
    transaction, if each is still the current QUEUED attempt of a live run. Each gets a
    ``task.redispatched`` event, and its grace starts again."""
    if not lost:
        return BatchOutcome([], [], 0, 0)
    run_ids = conn.execute(_RUNS_OF, {"task_run_ids": [c.task_run_id for c in lost]}).fetchall()
    runs = lock_runs(conn, sorted(r[0] for r in run_ids))
    live = {k: r for k, r in runs.items() if not RunStatus(r.status).is_final}
    if not live:
        return BatchOutcome([], [], 0, 0)
    rows = conn.execute(
        _REQUEUE,
        {
            "task_run_ids": [c.task_run_id for c in lost],
            "attempts": [c.attempt for c in lost],
            "queued": TaskStatus.QUEUED,
            "run_ids": list(live),
        },
    ).fetchall()
    ready = [(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]
    journals = {str(r[0]): r[4] for r in rows if r[4]}
    out: list[outbox.OutboxMessage] = []
    if ready:
        dispatch_ready(
            conn,
            topology,
            definitions,
            live,
            ready,
            out,
            event=TASK_REDISPATCHED,
            admitted=True,
            journals=journals,
        )
    return close_batch(conn, topology, definitions, live, out, len(ready))
