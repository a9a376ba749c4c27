"""The task-level concurrency strategies in the ratelimiter's admission pass (issue #21),
inside its transaction: the decision is roost_core.engine.strategies; this reads what it
needs and applies it.

A cancelled attempt ends the way ``roost.runs.cancel_task`` ends one: the scheduler,
which owns attempts and settles runs, is asked through the outbox (TaskCancelRequest,
as durable as this pass's commit) to end it CANCELLED, never retried, its descendants
never started. A cancelled holder is also stopped on its worker (CancelTasks); its hold
is marked, not deleted, so its units stay taken until its attempt has ended and the
newcomer it makes room for is admitted only then: the key is never over, even if the
worker or this ratelimiter dies meanwhile.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import psycopg

from roost_core import outbox
from roost_core.engine.choose import Key, KeyState, Waiter
from roost_core.engine.plan import columns
from roost_core.engine.strategies import Cancellations, Holder, make_room
from roost_core.queries import SQL
from roost_core.topology import TASK_CANCEL, TASK_CANCEL_REQUEST, Topology
from roost_core.wire import CancelTasks, TaskCancelRequest

Conn = psycopg.Connection[Any]

_HOLDERS = SQL.cancellable_holders
_MARK = SQL.mark_holds_cancelling
_TAKE = SQL.take_waiters


def apply_strategies(
    conn: Conn,
    topology: Topology,
    waiters: list[Waiter],
    keys: dict[Key, KeyState],
    out: list[outbox.OutboxMessage],
) -> Cancellations:
    """Cancel what the keys' strategies call for, writing the requests to ``out``;
    returns the decision (its waiters are no longer to be admitted). Keys that wait
    their turn cost no statement here."""
    if all(state.on_full == "wait" for state in keys.values()):
        return Cancellations()
    decision = make_room(waiters, keys, _holders(conn, keys))
    if decision.waiters:
        ids = [w.id for w, _ in decision.waiters]
        deleted = {r[0] for r in conn.execute(_TAKE, {"ids": ids})}
        for waiter, why in decision.waiters:
            if waiter.id in deleted:  # else its run was cancelled meanwhile: nothing to do
                out.append(_request(topology, waiter, why))
    if decision.holders:
        _cancel_holders(conn, topology, decision.holders, out)
    return decision


def _holders(conn: Conn, keys: dict[Key, KeyState]) -> dict[Key, list[Holder]]:
    wanted = sorted(k for k, s in keys.items() if s.on_full == "cancel_in_progress")
    if not wanted:
        return {}
    found: dict[Key, list[Holder]] = defaultdict(list)
    params = {"tenant_ids": [t for t, _ in wanted], "keys": [k for _, k in wanted]}
    for tenant, key, run_id, task_run_id, attempt, task, units in conn.execute(_HOLDERS, params):
        holder = Holder(str(tenant), key, str(run_id), str(task_run_id), attempt, task, units)
        found[(holder.tenant_id, key)].append(holder)
    return found


def _cancel_holders(
    conn: Conn,
    topology: Topology,
    holders: list[tuple[Holder, str]],
    out: list[outbox.OutboxMessage],
) -> None:
    """Mark the holds of these attempts and ask for their end; an attempt that ended
    meanwhile (its holds are gone) is left be."""
    params = columns(("task_run_ids", "attempts"), [(h.task_run_id, h.attempt) for h, _ in holders])
    marked = {(str(r[0]), r[1]) for r in conn.execute(_MARK, params)}
    stop: dict[str, list[str]] = defaultdict(list)
    for holder, why in holders:
        if (holder.task_run_id, holder.attempt) in marked:
            out.append(_request(topology, holder, why))
            stop[holder.run_id].append(holder.task_run_id)
    for run_id, task_run_ids in stop.items():
        body = CancelTasks(run_id=run_id, task_run_ids=task_run_ids).model_dump_json().encode()
        # A broadcast to the workers: it may reach none (the attempt is only queued yet;
        # a worker skips it when it comes).
        out.append(
            outbox.OutboxMessage(topology.control_exchange, TASK_CANCEL, body, mandatory=False)
        )


def _request(topology: Topology, who: Waiter | Holder, why: str) -> outbox.OutboxMessage:
    request = TaskCancelRequest(
        run_id=who.run_id,
        task_run_id=who.task_run_id,
        task=who.task,
        attempt=who.attempt,
        reason=why,
    )
    return outbox.OutboxMessage(
        topology.events_exchange, TASK_CANCEL_REQUEST, request.model_dump_json().encode()
    )
