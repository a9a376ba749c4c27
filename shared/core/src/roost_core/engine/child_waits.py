"""Durable tasks waiting for their child runs (issue #18: ``await child.aio_run(...)``
or ``ctx.wait_for_runs(refs)`` inside a durable task).

The wait is a row per child in ``child_waits``. On each tick the scheduler's probe asks
whether any waited-for child has ended; if so, ``match_child_waits`` locks the waiting
tasks' runs, drops the rows of the children that ended, and for each task with none left
writes every child's outcome (``{id, workflow, status, output, failed}``) into the wait's
journal entry and sends the task's next attempt, which replays up to the wait and gets
the outcomes (a failed child raises RunFailedError there). Level-triggered: a child that
ended before its parent's wait was recorded is found on the next tick all the same."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from roost_core import outbox
from roost_core.engine.batch import close_batch
from roost_core.engine.event_waits import with_event
from roost_core.engine.ready import fire_dispatches
from roost_core.engine.state import BatchOutcome, Conn, Definitions, lock_runs
from roost_core.queries import SQL
from roost_core.statuses import RUN_FINAL, RunStatus

_ADD = SQL.add_child_waits
_WITH_ENDED = SQL.child_waits_with_ended
_TAKE = SQL.take_ended_children
_LEFT = SQL.children_left
_OUTCOMES = SQL.child_outcomes
_DROP = SQL.drop_child_waits
_JOURNAL = SQL.journal_of_waiting
_WAKE = SQL.wake_with_event
_ENDED = sorted(RUN_FINAL)


def add_waits(conn: Conn, task_run_id: str, seq: int, children: Sequence[str]) -> None:
    """Record that ``task_run_id`` waits, at its durable call ``seq``, for ``children``."""
    conn.execute(_ADD, {"task_run_id": task_run_id, "seq": seq, "children": list(children)})


def outcome_of(row: Sequence[Any]) -> dict[str, Any]:
    """A child run's outcome as the waiting task gets it."""
    run_id, workflow, status, output, failed = row
    return {
        "id": run_id,
        "workflow": workflow,
        "status": status,
        "output": output,
        "failed": failed or [],
    }


def match_child_waits(conn: Conn, topology: Any, definitions: Definitions) -> BatchOutcome:
    """Inside the caller's transaction: take the ended children of a batch of waiting
    tasks, and send those with none left to wait for."""
    found = conn.execute(_WITH_ENDED, {"ended": _ENDED}).fetchall()
    if not found:
        return BatchOutcome([], [], 0, 0)
    runs = lock_runs(conn, sorted({r[1] for r in found}))
    live = {k: r for k, r in runs.items() if not RunStatus(r.status).is_final}
    task_run_ids = [str(r[0]) for r in found]
    conn.execute(_TAKE, {"task_run_ids": task_run_ids, "ended": _ENDED})
    left = {str(r[0]) for r in conn.execute(_LEFT, {"task_run_ids": task_run_ids})}
    woken: list[str] = []
    over: list[str] = []
    for task_run_id, run_id in ((str(a), b) for a, b in found):
        if run_id not in live:
            over.append(task_run_id)
        elif task_run_id not in left:
            if _wake(conn, task_run_id):
                woken.append(task_run_id)
            else:
                over.append(task_run_id)
    if over:
        conn.execute(_DROP, {"task_run_ids": over})
    out: list[outbox.OutboxMessage] = []
    fired = (
        fire_dispatches(conn, topology, definitions, live, out, task_run_ids=woken) if woken else 0
    )
    return close_batch(conn, topology, definitions, live, out, fired)


def _wake(conn: Conn, task_run_id: str) -> bool:
    """Write the outcomes of every child the task waited for into its wait's entry, its
    next attempt due now; False if the task no longer waits."""
    row = conn.execute(_JOURNAL, {"task_run_id": task_run_id}).fetchone()
    if row is None:
        return False
    journal = list(row[0] or [])
    waiting = [c for c in journal if c.get("kind") == "join" and c.get("result") is None]
    if not waiting:
        return False
    entry = waiting[-1]  # the wait is the last call made
    children = list(entry.get("children") or [])
    rows = conn.execute(_OUTCOMES, {"run_ids": children}).fetchall()
    by_id = {r[0]: outcome_of(r) for r in rows}
    gone: dict[str, Any] = {"status": "GONE", "output": None, "failed": []}  # retention
    outcomes = [by_id.get(c, {"id": c, "workflow": None, **gone}) for c in children]
    journal = with_event(journal, entry["seq"], {"runs": outcomes})
    conn.execute(_WAKE, {"journal": Jsonb(journal), "task_run_id": task_run_id})
    return True
