"""One admission pass of the ratelimiter, in one PostgreSQL transaction: what the full
keys' strategies cancel (:mod:`.make_room`), which waiting attempts and runs take their
units now (the choice is :mod:`.choose`), and what the admitted and the never-admissible
produce.

Passes are serialized across replicas by a transaction-scoped advisory lock: usage is
read and units are taken under it, so two replicas can never both hand out the last
unit. Releases (by the scheduler and the api) only ever delete holds; one that commits
during a pass makes that pass count a unit still in use, which can delay an admission to
the next pass (the release wakes one) but never over-admit.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from roost_core import outbox, tracing
from roost_core.admission import RUN_ATTEMPT, enqueue, unpack_run
from roost_core.engine.choose import Key, KeyState, Waiter, choose
from roost_core.engine.make_room import apply_strategies
from roost_core.engine.plan import columns, run
from roost_core.queries import SQL
from roost_core.topology import TASK_FAILED, Topology
from roost_core.wire import TaskError, TaskFailed

Conn = psycopg.Connection[Any]
_tracer = tracing.tracer("roost.ratelimiter")

_LOCK = SQL.lock_admission
_WAITERS = SQL.first_waiters
_ANY_WAITING = SQL.any_waiting
_KEYS = SQL.key_usage
_TRACES = SQL.run_traces
_TAKE = SQL.take_waiters
_HOLDS = SQL.insert_holds
_ADMISSIONS = SQL.insert_admissions
_PRUNE = SQL.prune_admissions


@dataclass
class PassOutcome:
    outbox_rows: list[outbox.OutboxRow]
    admitted: int
    failed: int
    cancelled: int  # by a full key's strategy (issue #21)
    waiting: int
    next_refill: float | None  # unix time a window key blocking a waiter frees units


def anything_waits(conn: Conn) -> bool:
    """Whether any attempt or run waits for admission: one read, so that an idle
    ratelimiter opens no transaction for its periodic pass (issue #17's idle target)."""
    return conn.execute(_ANY_WAITING).fetchone() is not None


def admission_pass(conn: Conn, topology: Topology, batch: int, rotation: int) -> PassOutcome:
    """Admit what fits now, inside the caller's transaction."""
    conn.execute(_LOCK)
    rows = conn.execute(_WAITERS, {"batch": batch}).fetchall()
    enqueued = {r[0]: float(r[10]) for r in rows}
    waiters = [
        Waiter(
            r[0],
            str(r[1]),
            str(r[2]),
            str(r[3]),
            r[4],
            r[5],
            list(r[6]),
            list(r[7]),
            r[8],
            bytes(r[9]),
            r[11],
        )
        for r in rows
    ]
    if not waiters:
        return PassOutcome([], 0, 0, 0, 0, None)
    wanted = sorted({key for w in waiters for key, _ in w.needs()})
    keys: dict[Key, KeyState] = {}
    refill: dict[Key, float] = {}
    for tenant, key, limit, window, in_use, on_full, frees_at in conn.execute(
        _KEYS, {"tenant_ids": [t for t, _ in wanted], "keys": [k for _, k in wanted]}
    ):
        keys[(str(tenant), key)] = KeyState(limit, window, int(in_use), on_full)
        if frees_at is not None:
            refill[(str(tenant), key)] = float(frees_at)
    messages: list[outbox.OutboxMessage] = []
    # First what full keys cancel, so that a cancelled attempt is neither admitted nor
    # ahead of anyone in choose()'s FIFO.
    cancelled = apply_strategies(conn, topology, waiters, keys, messages).waiter_ids
    waiters = [w for w in waiters if w.id not in cancelled]
    decision = choose(waiters, keys, rotation)

    admitted = _take(conn, decision.admitted, keys) if decision.admitted else []
    if admitted and tracing.enabled():
        _trace_admissions(conn, admitted, enqueued)
    for w in admitted:
        if w.attempt == RUN_ATTEMPT and not w.queue:
            # A run admitted into its concurrency group: its root tasks go on (those with
            # rate limits of their own wait again, for those).
            messages += run(conn.cursor(), enqueue(topology, unpack_run(w.message)))
        else:
            messages.append(outbox.OutboxMessage("", w.queue, w.message, priority=w.priority))
    failed = _fail(conn, topology, decision.impossible, messages)
    rows = run(conn.cursor(), outbox.insert(messages))

    gone = {w.id for w in admitted} | {w.id for w, _ in decision.impossible}
    still = [w for w in waiters if w.id not in gone]
    blocking = [refill[k] for w in still for k, _ in w.needs() if k in refill and keys[k].free <= 0]
    return PassOutcome(
        rows, len(admitted), failed, len(cancelled), len(still), min(blocking, default=None)
    )


def _trace_admissions(conn: Conn, admitted: list[Waiter], enqueued: dict[int, float]) -> None:
    """A span per admission in its run's trace, from when the attempt began to wait to
    now, with the time waited and the keys."""
    traces = dict(conn.execute(_TRACES, {"run_ids": [w.run_id for w in admitted]}).fetchall())
    now = time.time()
    for w in admitted:
        carrier = traces.get(uuid.UUID(w.run_id))
        if not carrier:
            continue
        began = enqueued.get(w.id, now)
        tracing.record_span(
            _tracer,
            f"admit {w.task or 'run'}",
            carrier,
            began,
            now,
            {
                "roost.run_id": w.run_id,
                "roost.task": w.task,
                "roost.attempt": w.attempt,
                "roost.rate_limit.keys": w.keys,
                "roost.waited_seconds": max(0.0, now - began),
            },
        )


def _take(conn: Conn, chosen: list[Waiter], keys: dict[Key, KeyState]) -> list[Waiter]:
    """Remove the chosen waiters and record what they take. A waiter deleted meanwhile
    (its run was cancelled) is not admitted."""
    deleted = {r[0] for r in conn.execute(_TAKE, {"ids": [w.id for w in chosen]})}
    taken = [w for w in chosen if w.id in deleted]
    holds: list[tuple[str, str, str, int, int]] = []
    windows: list[tuple[str, str, int]] = []
    for w in taken:
        for (tenant, key), units in w.needs():
            if keys[(tenant, key)].window_seconds is None:
                holds.append((tenant, key, w.task_run_id, w.attempt, units))
            else:
                windows.append((tenant, key, units))
    if holds:
        names = ("tenant_ids", "keys", "task_run_ids", "attempts", "units")
        conn.execute(_HOLDS, columns(names, holds))
    if windows:
        conn.execute(_ADMISSIONS, columns(("tenant_ids", "keys", "units"), windows))
    return taken


def _fail(
    conn: Conn,
    topology: Topology,
    impossible: list[tuple[Waiter, str]],
    out: list[outbox.OutboxMessage],
) -> int:
    """Attempts that can never be admitted (their key was deleted, or lowered below what
    they need) fail for good, reported to the scheduler like any failure."""
    if not impossible:
        return 0
    deleted = {r[0] for r in conn.execute(_TAKE, {"ids": [w.id for w, _ in impossible]})}
    now = time.time()
    for waiter, reason in impossible:
        if waiter.id not in deleted:
            continue
        report = TaskFailed(
            run_id=waiter.run_id,
            task_run_id=waiter.task_run_id,
            task=waiter.task,
            attempt=waiter.attempt,
            worker_id="ratelimiter",
            started_at=now,
            finished_at=now,
            error=TaskError(
                type="RateLimitUnsatisfiable", message=f"task {waiter.task!r} {reason}"
            ),
            retryable=False,
        )
        out.append(
            outbox.OutboxMessage(
                topology.events_exchange, TASK_FAILED, report.model_dump_json().encode()
            )
        )
    return len(deleted)


def prune(conn: Conn) -> int:
    """Drop window admissions no window can count any more (kept 10 minutes at least,
    for whoever wants to look at recent admissions)."""
    return conn.execute(_PRUNE).rowcount
