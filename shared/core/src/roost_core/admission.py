"""The handoff between the processes that make tasks ready (api, scheduler) and the
ratelimiter that admits those with rate limits.

A ready task with rate limits is not published to its worker queue: its message is
written to ``rate_limit_waiters`` in the same transaction, and a wake-up goes to the
ratelimiter through the outbox. When an attempt that holds concurrency units ends in any
way (success, failure, timeout, cancellation, lost worker), the process that records the
end deletes its holds (and any waiter of it) in the same transaction and wakes the
ratelimiter, so units are never leaked and never freed twice.

A workflow with a concurrency limit makes its runs wait the same way, as a whole: one
*run waiter* (attempt 0, keyed by the run's group) stands for the run's root task
messages, and releases them when admitted; the run holds its group's unit until it ends.

Tasks without rate limits touch none of this.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from roost_core.engine.plan import Plan, Statement, columns
from roost_core.outbox import Admission, DynamicKey, OutboxMessage
from roost_core.queries import SQL
from roost_core.topology import RATELIMITER_WAKE, Topology

_INSERT_WAITERS = SQL.insert_waiters

_RELEASE_HOLDS = SQL.release_holds
_RELEASE_WAITERS = SQL.release_waiters

Attempts = Sequence[tuple[str, int]]


_UPSERT_DYNAMIC = SQL.upsert_dynamic_keys


def _dynamic_params(held: Sequence[OutboxMessage]) -> dict[str, list[Any]] | None:
    rows = [
        (m.admission.tenant_id, d.key, d.limit, d.window_seconds, d.on_full)
        for m in held
        if m.admission is not None
        for d in m.admission.dynamic
    ]
    if not rows:
        return None
    return columns(("tenant_ids", "keys", "limits", "window_seconds", "on_full"), rows)


def split(messages: Sequence[OutboxMessage]) -> tuple[list[OutboxMessage], list[OutboxMessage]]:
    """(messages to publish now, task messages that must wait for admission)."""
    now = [m for m in messages if m.admission is None]
    held = [m for m in messages if m.admission is not None]
    return now, held


def wake(topology: Topology) -> OutboxMessage:
    """The hint that tells the ratelimiter to run an admission pass now."""
    return OutboxMessage(topology.events_exchange, RATELIMITER_WAKE, b"{}", mandatory=False)


def _params(held: Sequence[OutboxMessage]) -> dict[str, list[Any]]:
    adm = [m.admission for m in held]
    assert all(a is not None for a in adm)
    return {
        "tenant_ids": [a.tenant_id for a in adm if a],
        "run_ids": [a.run_id for a in adm if a],
        "task_run_ids": [a.task_run_id for a in adm if a],
        "attempts": [a.attempt for a in adm if a],
        "tasks": [a.task for a in adm if a],
        "keys": [" ".join(a.keys) for a in adm if a],
        "units": [" ".join(str(u) for u in a.units) for a in adm if a],
        "queues": [m.routing_key for m in held],
        "messages": [m.body for m in held],
        "priorities": [m.priority for m in held],
    }


def enqueue(topology: Topology, messages: Sequence[OutboxMessage]) -> Plan[list[OutboxMessage]]:
    """Write the task messages that need admission to the waiters table; return the rest
    (plus a wake-up for the ratelimiter when any waits) for the outbox."""
    now, held = split(messages)
    if not held:
        return now
    dynamic = _dynamic_params(held)
    if dynamic is not None:
        yield Statement(_UPSERT_DYNAMIC, dynamic)
    yield Statement(_INSERT_WAITERS, _params(held))
    return [*now, wake(topology)]


def release(topology: Topology, attempts: Attempts) -> Plan[list[OutboxMessage]]:
    """Free what these attempts hold or wait for, inside the caller's transaction;
    returns the wake-up to write to the outbox when anything was freed."""
    if not attempts:
        return []
    params = columns(("task_run_ids", "attempts"), attempts)
    freed = len((yield Statement(_RELEASE_HOLDS, params)))
    freed += len((yield Statement(_RELEASE_WAITERS, params)))
    return [wake(topology)] if freed else []


# -- runs waiting for their concurrency group --------------------------------------------

RUN_ATTEMPT = 0  # the "attempt" of a run waiter and of a run's hold on its group


def group_key(workflow: str, group: str) -> str:
    """The rate-limit key of a workflow's concurrency group (listed with the others)."""
    key = f"concurrency:{workflow}:{group}"
    if len(key) > 200:  # still unique, still a valid key
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        key = f"concurrency:{workflow[:100]}:{digest}"
    return key


def run_waiter(
    tenant_id: str,
    run_id: str,
    key: str,
    max_runs: int,
    messages: Sequence[OutboxMessage],
) -> OutboxMessage:
    """The one message that stands for a run waiting for its concurrency group."""
    packed = [
        {
            "exchange": m.exchange,
            "routing_key": m.routing_key,
            "body": base64.b64encode(m.body).decode(),
            "admission": asdict(m.admission) if m.admission else None,
            "priority": m.priority,
        }
        for m in messages
    ]
    return OutboxMessage(
        "",
        "",  # no queue: admitting it releases the messages it carries
        json.dumps(packed).encode(),
        admission=Admission(
            tenant_id=tenant_id,
            run_id=run_id,
            task_run_id=run_id,
            attempt=RUN_ATTEMPT,
            task="",
            keys=(key,),
            units=(1,),
            # The strategies of workflow concurrency apply at trigger time
            # (roost_core.engine.concurrency): in the ratelimiter, a run waits its turn.
            dynamic=(DynamicKey(key, max_runs, None),),
        ),
    )


def unpack_run(body: bytes) -> list[OutboxMessage]:
    """The task messages a run waiter carries."""
    out = []
    for item in json.loads(body):
        adm = item["admission"]
        out.append(
            OutboxMessage(
                item["exchange"],
                item["routing_key"],
                base64.b64decode(item["body"]),
                admission=Admission(
                    **{
                        **adm,
                        "keys": tuple(adm["keys"]),
                        "units": tuple(adm["units"]),
                        "dynamic": tuple(DynamicKey(*d) for d in adm["dynamic"]),
                    }
                )
                if adm
                else None,
                priority=item.get("priority"),  # absent from waiters of before priority
            )
        )
    return out
