"""Durable tasks waiting for an event (issue #18, ``ctx.wait_for_event``): the scheduler
matches each wait against the events pushed with its key, in push order.

An event ends at most one wait (``event_wait_matches``' primary key), the oldest wait
that judges it first; one whose data fails a wait's filter stays for other waits. Each
event is judged once per wait: a wait remembers the last event it looked at. A match
writes the event into the wait's journal entry and sends the task's next attempt at
once, which replays up to the wait and gets the event back (roost.DurableContext). A
wait whose timeout passes first is sent by the timer loop instead, its entry empty,
and the task raises WaitTimeoutError. Runs are locked first, as for every transition."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from roost_core import event_filters, outbox
from roost_core.engine.batch import close_batch
from roost_core.engine.ready import fire_dispatches
from roost_core.engine.state import BatchOutcome, Conn, Definitions, lock_runs
from roost_core.queries import SQL
from roost_core.statuses import RunStatus
from roost_core.wire import EventWait

_ADD = SQL.add_event_wait
_DUE = SQL.event_waits_due
_UNSEEN = SQL.unseen_events
_TAKE = SQL.take_event
_UNTAKE = SQL.untake_event
_JOURNAL = SQL.journal_of_waiting
_WAKE = SQL.wake_with_event
_SEEN = SQL.event_wait_seen
_DROP = SQL.drop_event_waits


def add_wait(conn: Conn, task_run_id: str, seq: int, wait: EventWait) -> None:
    """Record that ``task_run_id`` waits for ``wait`` at its durable call ``seq`` (one
    branch of an any-of wait if ``wait.name`` is set)."""
    conn.execute(
        _ADD,
        {
            "task_run_id": task_run_id,
            "branch": wait.name,
            "seq": seq,
            "key": wait.key,
            "filter": wait.filter,
            "since": wait.since,
        },
    )


def drop_waits(conn: Conn, task_run_ids: Sequence[str]) -> None:
    """Forget the event waits of ``task_run_ids`` (sent again, or no longer waiting)."""
    if task_run_ids:
        conn.execute(_DROP, {"task_run_ids": list(task_run_ids)})


def event_of(row: Sequence[Any]) -> dict[str, Any]:
    """A pushed event as the task gets it: ``{id, key, data, created_at}``."""
    event_id, key, data, created_at = row
    return {"id": str(event_id), "key": key, "data": data, "created_at": _iso(created_at)}


def with_event(journal: list[dict[str, Any]], seq: int, event: dict[str, Any]) -> list[Any]:
    """``journal`` with ``event`` as the result of the wait at ``seq``."""
    return [{**call, "result": event} if call.get("seq") == seq else call for call in journal]


def match_event_waits(conn: Conn, topology: Any, definitions: Definitions) -> BatchOutcome:
    """Match a batch of waits with events they have not judged yet, inside the caller's
    transaction; send the tasks whose wait an event ended."""
    due = conn.execute(_DUE).fetchall()
    if not due:
        return BatchOutcome([], [], 0, 0)
    runs = lock_runs(conn, sorted({r[1] for r in due}))
    live = {k: r for k, r in runs.items() if not RunStatus(r.status).is_final}
    woken: list[str] = []
    over: list[str] = []
    for task_run_id, run_id, tenant_id, seq, key, expression, seen_at, seen_id, branch in due:
        task_run_id = str(task_run_id)
        if task_run_id in woken or task_run_id in over:
            continue  # another branch of its wait ended it in this batch
        if run_id not in live:
            over.append(task_run_id)
            continue
        events = conn.execute(
            _UNSEEN, {"tenant_id": tenant_id, "key": key, "seen_at": seen_at, "seen_id": seen_id}
        ).fetchall()
        outcome = _judge(conn, task_run_id, seq, expression, events, branch)
        if outcome == "woken":
            woken.append(task_run_id)
        elif outcome == "gone":
            over.append(task_run_id)
        elif events:  # none passed: remember how far this wait has looked
            last = events[-1]
            conn.execute(
                _SEEN,
                {
                    "seen_at": last[3],
                    "seen_id": last[0],
                    "task_run_id": task_run_id,
                    "branch": branch,
                },
            )
    drop_waits(conn, [*woken, *over])
    out: list[outbox.OutboxMessage] = []
    fired = (
        fire_dispatches(conn, topology, definitions, live, out, task_run_ids=woken) if woken else 0
    )
    return close_batch(conn, topology, definitions, live, out, fired)


def _judge(
    conn: Conn,
    task_run_id: str,
    seq: int,
    expression: str | None,
    events: list[Any],
    branch: str = "",
) -> str:
    """The first of ``events`` that passes the filter and no other wait took ends the
    wait: "woken"; "gone" if the task is no longer waiting; "" if none did. An any-of
    wait's entry records which branch the event ended (``{fired, event}``)."""
    for event_id, key, data, created_at in events:
        if not event_filters.passes(expression, data):
            continue
        if conn.execute(_TAKE, {"event_id": event_id, "task_run_id": task_run_id}).fetchone():
            found = conn.execute(_JOURNAL, {"task_run_id": task_run_id}).fetchone()
            if found is None:
                conn.execute(_UNTAKE, {"event_id": event_id})
                return "gone"
            event = event_of((event_id, key, data, created_at))
            result = {"fired": branch, "event": event} if branch else event
            journal = with_event(list(found[0] or []), seq, result)
            conn.execute(_WAKE, {"journal": Jsonb(journal), "task_run_id": task_run_id})
            return "woken"
    return ""


def _iso(at: datetime | str) -> str:
    return at.isoformat() if isinstance(at, datetime) else str(at)
