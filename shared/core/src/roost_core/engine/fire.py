"""Firing schedules (issue #19): crons whose fire time has come and scheduled runs whose
time has, each starting its run exactly once, whichever scheduler replica fires it and
whatever dies at the fire instant.

Exactly once rests on three things in one transaction: the due rows are locked with
``FOR UPDATE SKIP LOCKED`` (a second replica skips them), each (cron, fire time) is
claimed in ``cron_fires`` whose primary key refuses a second claim, and the cron's next
fire time (or the scheduled run's status) moves on in the same commit as the runs it
started. A crash before the commit fires nothing; after it, everything.

Which times fire is decided by :func:`roost_core.crons.due_fires`; what runs they start
by :func:`plan_fires`: pure functions, unit-tested. The runs are made by the one trigger
transition (roost_core.engine.trigger), of each workflow's newest version.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from opentelemetry import trace

from roost_core import crons, outbox, tracing
from roost_core.engine import plan, trigger
from roost_core.engine.state import Conn, Definitions
from roost_core.queries import SQL
from roost_core.topology import Topology

_DUE = SQL.schedules_due
_CLOCK = SQL.clock
_LOCK_CRONS = SQL.lock_due_crons
_LOCK_SCHEDULED = SQL.lock_due_scheduled_runs
_CLAIM = SQL.claim_cron_fires
_ADVANCE = SQL.advance_crons
_MARK_FIRED = SQL.mark_scheduled_fired
_NEWEST = SQL.newest_versions
_FAIL_SCHEDULED = SQL.fail_scheduled_run

#: Due crons (and due scheduled runs) fired per transaction.
BATCH = 500

Kind = Literal["cron", "scheduled"]
_tracer = tracing.tracer("roost.scheduler")


@dataclass(frozen=True)
class DueCron:
    id: str
    tenant_id: str
    workflow_id: str
    workflow: str
    name: str
    expression: str
    timezone: str
    input: Any
    metadata: dict[str, str]
    catch_up: crons.CatchUp
    next_fire_at: datetime


@dataclass(frozen=True)
class Start:
    """A run a fire starts."""

    run_id: uuid.UUID
    tenant_id: str
    workflow_id: str
    input: Any
    metadata: dict[str, str]
    kind: Kind
    source_id: str  # the cron's or the scheduled run's id
    due_at: datetime  # the fire time (for the fire lag)


@dataclass(frozen=True)
class Advance:
    """A due cron's new next fire time, and its latest fire (None: none fired now)."""

    cron_id: str
    next_at: datetime
    last_at: datetime | None


@dataclass(frozen=True)
class Missed:
    cron_id: str
    workflow: str
    name: str
    count: int  # missed times not fired (at least this many when capped)
    capped: bool


@dataclass(frozen=True)
class CronPlan:
    starts: list[Start]
    advances: list[Advance]
    missed: list[Missed]


def plan_fires(due: Sequence[DueCron], now: datetime, grace: float) -> CronPlan:
    """Which runs the due crons start at ``now`` and where each cron's next fire time
    moves: pure. A started run carries its cron's metadata and says which cron and
    which fire time made it (``roost.cron``, ``roost.cron_id``, ``roost.fire_at``)."""
    starts: list[Start] = []
    advances: list[Advance] = []
    missed: list[Missed] = []
    for cron in due:
        fires = crons.due_fires(
            cron.expression, cron.timezone, cron.next_fire_at, now, cron.catch_up, grace
        )
        advances.append(
            Advance(cron.id, fires.next_at, fires.fire_at[-1] if fires.fire_at else None)
        )
        if fires.missed:
            missed.append(Missed(cron.id, cron.workflow, cron.name, fires.missed, fires.capped))
        for at in fires.fire_at:
            metadata = {
                **cron.metadata,
                "roost.cron": cron.name,
                "roost.cron_id": cron.id,
                "roost.fire_at": at.isoformat(),
            }
            starts.append(
                Start(
                    uuid.uuid4(),
                    cron.tenant_id,
                    cron.workflow_id,
                    cron.input,
                    metadata,
                    "cron",
                    cron.id,
                    at,
                )
            )
    return CronPlan(starts, advances, missed)


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    workflow: str
    kind: Kind
    source_id: str
    due_at: datetime  # its fire time (for the fire lag, measured once committed)


@dataclass
class Fired:
    outbox_rows: list[outbox.OutboxRow] = field(default_factory=list)
    started: list[StartedRun] = field(default_factory=list)
    missed: list[Missed] = field(default_factory=list)
    spans: list[trace.Span] = field(default_factory=list)  # end them once committed
    locked: int = 0  # due crons and scheduled runs this transaction took


def set_aside(conn: Conn, kind: Kind, error: str) -> str | None:
    """The earliest due cron or scheduled run, which failed to fire on its own (a
    workflow's newest version that cannot take its input, say), is set aside so that it
    holds up no other: a cron skips to its next fire time after now, a scheduled run
    ends FAILED with ``error``. Returns its id (None: nothing due)."""
    now = _clock(conn)
    if kind == "scheduled":
        row = conn.execute(_FAIL_SCHEDULED, {"now": now, "error": error}).fetchone()
        return str(row[0]) if row else None
    found = conn.execute(_LOCK_CRONS, {"now": now, "limit": 1}).fetchone()
    if found is None:
        return None
    cron_id, expression, timezone = str(found[0]), found[5], found[6]
    following = crons.next_fire(expression, timezone, now)
    conn.execute(_ADVANCE, {"ids": [cron_id], "next_ats": [following], "last_ats": [None]})
    return cron_id


def _clock(conn: Conn) -> datetime:
    row = conn.execute(_CLOCK).fetchone()
    assert row is not None
    now: datetime = row[0]
    return now


def schedules_due(conn: Conn) -> bool:
    """Whether a cron or scheduled run is due: one cheap read for an idle scheduler."""
    return conn.execute(_DUE).fetchone() is not None


def fire_schedules(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    grace: float,
    limit: int = BATCH,
    kinds: Sequence[Kind] = ("cron", "scheduled"),
) -> Fired:
    """Fire what is due, inside the caller's transaction (up to ``limit`` of each of
    ``kinds``)."""
    now = _clock(conn)
    due = []
    if "cron" in kinds:
        due = [
            DueCron(str(r[0]), str(r[1]), str(r[2]), *r[3:])
            for r in conn.execute(_LOCK_CRONS, {"now": now, "limit": limit}).fetchall()
        ]
    scheduled = []
    if "scheduled" in kinds:
        scheduled = conn.execute(_LOCK_SCHEDULED, {"now": now, "limit": limit}).fetchall()
    if not due and not scheduled:
        return Fired()
    decided = plan_fires(due, now, grace)
    starts = decided.starts
    if starts:
        claimed = {
            r[0]
            for r in conn.execute(
                _CLAIM,
                {
                    "cron_ids": [s.source_id for s in starts],
                    "fire_ats": [s.due_at for s in starts],
                    "run_ids": [s.run_id for s in starts],
                },
            ).fetchall()
        }
        starts = [s for s in starts if s.run_id in claimed]
    for sid, tenant_id, workflow_id, run_input, metadata, trigger_at in scheduled:
        starts.append(
            Start(
                uuid.uuid4(),
                str(tenant_id),
                str(workflow_id),
                run_input,
                {**metadata, "roost.scheduled_id": str(sid)},
                "scheduled",
                str(sid),
                trigger_at,
            )
        )
    fired = Fired(missed=decided.missed, locked=len(due) + len(scheduled))
    fired.outbox_rows = _start_runs(conn, topology, definitions, starts, fired)
    if decided.advances:
        conn.execute(
            _ADVANCE,
            {
                "ids": [a.cron_id for a in decided.advances],
                "next_ats": [a.next_at for a in decided.advances],
                "last_ats": [a.last_at for a in decided.advances],
            },
        )
    if scheduled:
        by_source = {s.source_id: s.run_id for s in starts if s.kind == "scheduled"}
        conn.execute(
            _MARK_FIRED,
            {"ids": list(by_source), "run_ids": list(by_source.values())},
        )
    return fired


def _start_runs(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    starts: list[Start],
    fired: Fired,
) -> list[outbox.OutboxRow]:
    """Create the runs, a trigger per workflow, of its newest version."""
    if not starts:
        return []
    newest = {
        str(w): str(v)
        for w, v in conn.execute(
            _NEWEST, {"workflow_ids": sorted({s.workflow_id for s in starts})}
        ).fetchall()
    }
    groups: dict[str, list[Start]] = {}
    for start in starts:
        groups.setdefault(start.workflow_id, []).append(start)
    rows: list[outbox.OutboxRow] = []
    for workflow_id, group in groups.items():
        version_id = newest[workflow_id]
        definition = definitions.get(conn, version_id)
        requests = []
        for start in group:
            requests.append(
                trigger.Request(
                    start.run_id,
                    start.input,
                    metadata=start.metadata,
                    trace=_run_trace(definition.name, start, fired),
                )
            )
            fired.started.append(
                StartedRun(
                    str(start.run_id),
                    definition.name,
                    start.kind,
                    start.source_id,
                    start.due_at,
                )
            )
        done = plan.run(
            conn.cursor(),
            trigger.trigger(
                topology, group[0].tenant_id, workflow_id, version_id, definition, requests
            ),
        )
        rows += done.outbox_rows
    return rows


def _run_trace(workflow: str, start: Start, fired: Fired) -> dict[str, str] | None:
    """The run's own span (a root: a fire has no caller), when tracing is on."""
    if not tracing.enabled():
        return None
    span = _tracer.start_span(
        f"run {workflow}",
        attributes={
            "roost.run_id": str(start.run_id),
            "roost.workflow": workflow,
            f"roost.{start.kind}_id": start.source_id,
        },
    )
    fired.spans.append(span)
    return tracing.carrier(trace.set_span_in_context(span)) or None
