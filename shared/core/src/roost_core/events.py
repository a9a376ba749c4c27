"""The durable event log: what happened to a run and its tasks, in order.

Every process that changes a run (the api on trigger, cancel and replay; the scheduler
for everything else) appends the matching events in the same transaction, while it
holds the run's row lock, and writes one outbox message that broadcasts them to the
gateways. So an event is in PostgreSQL before anyone can see it (the architecture's
first invariant), and a run's events get gapless, increasing ``seq`` numbers in the
order they commit: a gateway that receives seq 7 before seq 6 knows 6 exists and reads
it from the log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from roost_core import fastjson, outbox
from roost_core.engine.plan import Plan, Statement
from roost_core.outbox import OutboxMessage, OutboxRow
from roost_core.queries import SQL
from roost_core.statuses import RunStatus
from roost_core.topology import EVENTS_APPENDED, Topology

# Event types: one vocabulary for SSE, the SDK, the CLI and the dashboard.
RUN_QUEUED = "run.queued"
RUN_STARTED = "run.started"
RUN_SUCCEEDED = "run.succeeded"
RUN_FAILED = "run.failed"
RUN_CANCELLED = "run.cancelled"
TASK_QUEUED = "task.queued"
TASK_STARTED = "task.started"
TASK_LOG = "task.log"
TASK_PROGRESS = "task.progress"
TASK_STREAM = "task.stream"
TASK_DEADLINE = "task.deadline"  # a running attempt moved its deadline (ctx.refresh_timeout)
TASK_RETRYING = "task.retrying"
TASK_WAITING = "task.waiting"  # a durable task suspended to wait: {reason, until}
# What a waiting task asked was decided, {approval_id, status: APPROVED or REJECTED,
# approved, by, reason}, or timed out with no decision, {approval_id, status: EXPIRED}
TASK_APPROVAL = "task.approval"
TASK_REDISPATCHED = "task.redispatched"  # its message was lost: sent again, same attempt
TASK_SUCCEEDED = "task.succeeded"
TASK_FAILED = "task.failed"
TASK_TIMED_OUT = "task.timed_out"
TASK_CANCELLED = "task.cancelled"

RUN_FINAL_TYPES = frozenset({RUN_SUCCEEDED, RUN_FAILED, RUN_CANCELLED})
ALL_TYPES = frozenset(
    {
        RUN_QUEUED,
        RUN_STARTED,
        *RUN_FINAL_TYPES,
        TASK_QUEUED,
        TASK_STARTED,
        TASK_LOG,
        TASK_PROGRESS,
        TASK_STREAM,
        TASK_DEADLINE,
        TASK_RETRYING,
        TASK_WAITING,
        TASK_APPROVAL,
        TASK_REDISPATCHED,
        TASK_SUCCEEDED,
        TASK_FAILED,
        TASK_TIMED_OUT,
        TASK_CANCELLED,
    }
)


def run_final_type(status: str) -> str:
    """The event type of a run ending in ``status``."""
    return f"run.{RunStatus(status).value.lower()}"


@dataclass
class NewEvent:
    """An event to append; the log gives it its id and seq."""

    type: str
    task: str | None = None
    attempt: int | None = None
    data: Any = None
    at: float = field(default_factory=time.time)


class Event(BaseModel):
    """An event as stored and streamed."""

    model_config = ConfigDict(frozen=True)

    id: int
    seq: int
    tenant_id: str
    run_id: str
    workflow: str
    type: str
    task: str | None = None
    attempt: int | None = None
    data: Any = None
    at: float

    @property
    def ends_run(self) -> bool:
        return self.type in RUN_FINAL_TYPES


class EventBatch(BaseModel):
    """The body of the broadcast that tells gateways what one transaction appended."""

    tenant_id: str
    events: list[Event]


def public(event: Event) -> dict[str, Any]:
    """An event as clients see it (SSE data, the SDK, the api)."""
    return event.model_dump(exclude={"tenant_id"})


@dataclass(frozen=True)
class RunEvents:
    """The events one transaction appends to one run."""

    tenant_id: str
    run_id: str
    workflow: str
    events: list[NewEvent]


_APPEND = SQL.append_events_and_outbox


def _flatten(batches: list[RunEvents]) -> list[tuple[RunEvents, NewEvent]]:
    return [(b, e) for b in batches for e in b.events]


def _params(flat: list[tuple[RunEvents, NewEvent]]) -> dict[str, list[Any]]:
    return {
        "tenant_ids": [b.tenant_id for b, _ in flat],
        "run_ids": [b.run_id for b, _ in flat],
        "workflows": [b.workflow for b, _ in flat],
        "types": [e.type for _, e in flat],
        "tasks": [e.task for _, e in flat],
        "attempts": [e.attempt for _, e in flat],
        "data": [None if e.data is None else fastjson.dumps(e.data) for _, e in flat],
        "at": [e.at for _, e in flat],
    }


def _stored(flat: list[tuple[RunEvents, NewEvent]], ids: list[tuple[int, int]]) -> list[Event]:
    # Built from what this process just wrote and PostgreSQL numbered: nothing to
    # validate (model_construct is a fifth of the cost, and a scheduler batch makes
    # thousands, issue #17).
    return [
        Event.model_construct(
            id=i,
            seq=s,
            tenant_id=b.tenant_id,
            run_id=b.run_id,
            workflow=b.workflow,
            type=e.type,
            task=e.task,
            attempt=e.attempt,
            data=e.data,
            at=e.at,
        )
        for (b, e), (i, s) in zip(flat, ids, strict=True)
    ]


def append(
    topology: Topology, batches: list[RunEvents], messages: list[OutboxMessage]
) -> Plan[tuple[list[Event], list[OutboxRow]]]:
    """Append events and write the outbox in one statement, inside the caller's
    transaction, which must hold each run's lock: first, per tenant, the broadcast that
    streams the events to every gateway replica (an :class:`EventBatch`, built by
    PostgreSQL from the rows it inserted), then ``messages``. The broadcast is not
    mandatory: with no gateway running nobody listens, and the log has everything."""
    flat = _flatten(batches)
    if not flat:
        rows = yield from outbox.insert(messages)
        return [], rows
    found = yield Statement(
        _APPEND,
        {
            **_params(flat),
            **outbox.insert_params(messages),
            "events_exchange": topology.events_exchange,
            "events_key": EVENTS_APPENDED,
        },
        deferrable=True,  # nothing follows it in an engine transaction: plan.run_deferred
    )
    appended = _stored(flat, [(r[1], r[2]) for r in found if r[0]])
    written = [r for r in found if not r[0]]
    broadcasts = [
        OutboxRow(
            r[1],
            OutboxMessage(topology.events_exchange, EVENTS_APPENDED, r[3], mandatory=False),
        )
        for r in written[: len(written) - len(messages)]
    ]
    sent = [OutboxRow(r[1], m) for r, m in zip(written[len(broadcasts) :], messages, strict=True)]
    return appended, [*broadcasts, *sent]
