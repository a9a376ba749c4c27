"""The state a transaction of the engine works on: the runs it has locked (with what it
decided about them, to write at the end), what it produced, and workflow definitions."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from roost_core import events, outbox
from roost_core.events import Event as AppendedEvent
from roost_core.queries import SQL
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.wire import WorkflowDefinition

Conn = psycopg.Connection[Any]
ACTIVE = [TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]
# The engine's own execution deadline trails the worker's (Dramatiq checks its time
# limits once a second): the worker normally interrupts and reports first.
EXECUTION_GRACE_SECONDS = 5.0

_DEFINITION = SQL.workflow_definition
_LOCK_RUNS = SQL.lock_runs
_MARK_RUNNING = SQL.mark_runs_running


@dataclass
class RunState:
    id: str
    status: str
    input: Any
    workflow: str
    version_id: str
    tenant_id: str
    trace: dict[str, str] | None = None  # the run's trace context, for its task messages
    metadata: dict[str, str] = field(default_factory=dict)  # for its task messages too
    first_report_at: float | None = None
    settled: int = 0  # tasks this batch moved to a final state, not yet counted
    # What the run has left once a statement counted this batch's settled tasks itself
    # (engine.reports' success statement); None: nothing counted yet.
    remaining: int | None = None
    events: list[events.NewEvent] = field(default_factory=list)  # to append at the end
    released: list[tuple[str, int]] = field(default_factory=list)  # attempts that ended
    # A task of this run, whose workflow has a concurrency limit, suspended to wait in
    # this batch: if the run has no active task left at its end, it gives back its place
    # in its group (roost_core.engine.waits.give_back_places).
    suspended: bool = False
    # Placement (issue #21): the worker process a sticky run's tasks go to, once chosen,
    # and the run's override of its tasks' desired labels (JSON, as triggered).
    sticky_worker: str | None = None
    desired_labels: dict[str, Any] | None = None
    priority: int = 1  # its tasks' priority on their queues, 1-3 (engine.priority)

    def event(
        self,
        type: str,
        task: str | None = None,
        attempt: int | None = None,
        data: Any = None,
        at: float | None = None,
    ) -> None:
        self.events.append(
            events.NewEvent(type, task, attempt, data, time.time() if at is None else at)
        )


@dataclass
class BatchOutcome:
    outbox_rows: list[outbox.OutboxRow]
    finished_runs: list[tuple[str, str]]  # (run id, final status)
    applied: int
    ignored: int
    events: list[events.Event] = field(default_factory=list)  # appended to the log
    # Set when the batch's last statement was only sent (apply_reports(deferred=True)):
    # reads its rows. complete() calls it, once the transaction has ended.
    rest: Callable[[], tuple[list[outbox.OutboxRow], list[AppendedEvent]]] | None = None

    def complete(self) -> BatchOutcome:
        """Read what the batch's last statement wrote (after COMMIT, when deferred)."""
        if self.rest is not None:
            self.outbox_rows, self.events = self.rest()
            self.rest = None
        return self


class Definitions:
    """Workflow versions are immutable, so each is read from PostgreSQL once."""

    def __init__(self) -> None:
        self._cache: dict[str, WorkflowDefinition] = {}

    def get(self, conn: Conn, version_id: str) -> WorkflowDefinition:
        found = self.find(conn, version_id)
        assert found is not None, f"workflow version {version_id} vanished"
        return found

    def find(self, conn: Conn, version_id: str) -> WorkflowDefinition | None:
        """The version's definition, or None if there is no such version."""
        found = self._cache.get(version_id)
        if found is None:
            row = conn.execute(_DEFINITION, {"version_id": version_id}).fetchone()
            if row is None:
                return None
            found = self._cache[version_id] = WorkflowDefinition.model_validate(row[0])
        return found


def lock_runs(conn: Conn, run_ids: list[str]) -> dict[str, RunState]:
    """Lock every run the batch touches, in id order, so two scheduler replicas never
    deadlock and each sees the other's committed work on the same run."""
    return locked_runs(send_lock_runs(conn, run_ids))


def send_lock_runs(conn: Conn, run_ids: list[str]) -> psycopg.Cursor[Any]:
    """:func:`lock_runs` in two halves: the statement, whose rows ``locked_runs``
    reads. On a pipelined connection, what is sent between the halves goes in the same
    round trip (engine.reports sends its success statement there)."""
    return conn.execute(_LOCK_RUNS, {"run_ids": run_ids})


def locked_runs(cur: psycopg.Cursor[Any]) -> dict[str, RunState]:
    runs: dict[str, RunState] = {}
    for row in cur:
        runs[str(row[0])] = RunState(
            str(row[0]),
            row[1],
            row[2],
            row[3],
            str(row[4]),
            str(row[5]),
            row[6],
            row[7] or {},
            sticky_worker=row[8],
            desired_labels=row[9],
            priority=row[10],
        )
    return runs


def mark_runs_running(conn: Conn, runs: Sequence[RunState]) -> None:
    if not runs:
        return
    conn.execute(
        _MARK_RUNNING,
        {
            "running": RunStatus.RUNNING,
            "run_ids": [r.id for r in runs],
            "started_at": [r.first_report_at for r in runs],
            "queued": RunStatus.QUEUED,
        },
    )
    for run in runs:
        run.status = RunStatus.RUNNING
        run.event(events.RUN_STARTED, at=run.first_report_at)
