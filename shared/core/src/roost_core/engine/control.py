"""What a person or program does to a whole run: cancel it, or replay it once it has
ended. Written as plans (roost_core.engine.plan): the api runs them on its async
connections, inside the transaction of the request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from roost_core import admission, dag, dispatch, events, outbox
from roost_core.engine import placing, record
from roost_core.engine.plan import Plan, Statement
from roost_core.engine.ready import set_deadlines
from roost_core.errors import ConflictError, UnknownRunError
from roost_core.queries import SQL
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.topology import TASK_CANCEL, Topology
from roost_core.wire import CancelTasks, WorkflowDefinition

_LOCK_RUN = SQL.lock_run
_CANCEL_TASKS = SQL.cancel_tasks
_RECORD_CANCELLED = SQL.record_cancelled_attempts
_CANCEL_RUN = SQL.cancel_run
_DELETE_TASK_RUN = SQL.delete_task_run
_TASK_RESULTS = SQL.task_results
_RESET_TASKS = SQL.reset_tasks
_RESTART_RUN = SQL.restart_run
_ACTIVE_CHILDREN = SQL.active_child_runs
_LOCK_FAMILY = SQL.lock_family


@dataclass(frozen=True)
class LockedRun:
    """A run locked for the rest of the transaction, with its definition."""

    id: str
    status: RunStatus
    input: Any
    workflow: str
    tenant_id: str
    concurrency_key: str | None
    trace: dict[str, str] | None
    definition: WorkflowDefinition
    metadata: dict[str, str]
    desired_labels: dict[str, Any] | None = None  # the run's override (issue #21)
    priority: int = 1  # its tasks' priority on their queues (engine.priority)

    def events(self, new: list[events.NewEvent]) -> list[events.RunEvents]:
        return [events.RunEvents(self.tenant_id, self.id, self.workflow, new)]


def check_run_id(run_id: str) -> None:
    """A run id that is not even a UUID names no run: 404, not a database error."""
    try:
        uuid.UUID(run_id)
    except ValueError:
        raise UnknownRunError(f"run {run_id!r} not found: not a run id") from None


def lock_run(tenant_id: str, run_id: str) -> Plan[LockedRun]:
    """Lock one of the tenant's runs (``FOR UPDATE``); raise if it does not exist."""
    check_run_id(run_id)
    rows = yield Statement(_LOCK_RUN, {"run_id": run_id, "tenant_id": tenant_id})
    if not rows:
        raise UnknownRunError(f"run {run_id!r} not found")
    r = rows[0]
    return LockedRun(
        r[0],
        RunStatus(r[1]),
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        WorkflowDefinition.model_validate(r[7]),
        r[8] or {},
        r[9],
        r[10],
    )


def cancel_run(
    topology: Topology, tenant_id: str, run_id: str, reason: str | None = None
) -> Plan[tuple[bool, list[outbox.OutboxRow]]]:
    """Cancel a run: every task not yet final ends CANCELLED (queued ones never start,
    running ones are told to stop), and so does the run, and so do its child runs still
    active (issue #18), theirs too (the whole family locked first, in id order). Returns
    whether anything changed (a run already ended is left as it is) and the outbox rows
    to publish after commit."""
    check_run_id(run_id)
    yield Statement(_LOCK_FAMILY, {"run_id": run_id, "tenant_id": tenant_id}, rows=False)
    run = yield from lock_run(tenant_id, run_id)
    if run.status.is_final:
        return False, []
    error = {"type": "Cancelled", "message": reason or f"run {run_id} was cancelled"}
    ended = yield Statement(
        _CANCEL_TASKS,
        {
            "cancelled": TaskStatus.CANCELLED,
            "error": Jsonb(error),
            "run_id": run_id,
            "statuses": [
                TaskStatus.PENDING,
                TaskStatus.QUEUED,
                TaskStatus.RUNNING,
                TaskStatus.WAITING,
            ],
        },
    )
    stopped = [r for r in ended if r[1] > 0]
    if stopped:
        yield Statement(
            _RECORD_CANCELLED,
            {
                "cancelled": TaskStatus.CANCELLED,
                "error": Jsonb(error),
                "task_run_ids": [r[0] for r in stopped],
                "attempts": [r[1] for r in stopped],
                "worker_ids": [r[3] for r in stopped],
                "queued_at": [r[4] for r in stopped],
                "started_at": [r[5] for r in stopped],
            },
        )
    yield Statement(
        _CANCEL_RUN,
        {
            "cancelled": RunStatus.CANCELLED,
            "error": Jsonb({"message": reason or f"run {run_id} was cancelled"}),
            "run_id": run_id,
            "succeeded": TaskStatus.SUCCEEDED,
        },
    )
    yield from record.notify_final([run_id])
    run_events = [
        events.NewEvent(events.TASK_CANCELLED, r[6], r[1] or None, {"error": error})
        for r in sorted(ended, key=lambda r: r[6])
    ]
    run_events.append(events.NewEvent(events.RUN_CANCELLED, data={"error": error}))
    messages: list[outbox.OutboxMessage] = []
    # Attempts waiting for admission leave the queue; running ones free their units.
    held = [(str(r[0]), r[1]) for r in stopped if run.definition.by_name[r[6]].admitted]
    if run.definition.concurrency is not None:
        held.append((run_id, admission.RUN_ATTEMPT))  # its place in its group, or its wait
    if stopped:
        message = CancelTasks(run_id=run_id, task_run_ids=[str(r[0]) for r in stopped])
        messages.append(
            outbox.OutboxMessage(
                topology.control_exchange,
                TASK_CANCEL,
                message.model_dump_json().encode(),
                mandatory=False,
            )
        )
    written = yield from record.write(topology, run.events(run_events), messages, held)
    rows = written.outbox_rows
    # Its child runs (triggered inside its tasks) are cancelled with it, and theirs.
    children = yield Statement(_ACTIVE_CHILDREN, {"run_id": run_id})
    for (child_id,) in children:
        why = f"its parent run {run_id} was cancelled"
        _, child_rows = yield from cancel_run(topology, tenant_id, child_id, why)
        rows += child_rows
    return True, rows


def replay_run(topology: Topology, tenant_id: str, run_id: str) -> Plan[list[outbox.OutboxRow]]:
    """Re-run an ended run's failed, timed-out and cancelled tasks and their
    descendants. Succeeded tasks keep their outputs and do not run again; attempt
    numbers go on from where they were; each replayed task has its whole retry budget
    again."""
    run = yield from lock_run(tenant_id, run_id)
    if not run.status.is_final:
        raise ConflictError(
            f"run {run_id} is still {run.status}: only an ended run can be replayed"
        )
    definition = run.definition
    if definition.on_failure is not None:
        yield Statement(_DELETE_TASK_RUN, {"run_id": run_id, "task": definition.on_failure.name})
    rows = yield Statement(_TASK_RESULTS, {"run_id": run_id})
    tasks = {name: (st, out) for name, st, out in rows}
    again = {n for n, (st, _) in tasks.items() if st != TaskStatus.SUCCEEDED}
    again |= dag.descendants(definition, again)
    if not again:
        raise ConflictError(f"run {run_id} succeeded: nothing to replay")
    succeeded = {n: out for n, (st, out) in tasks.items() if n not in again}
    pending = {
        t.name: sum(1 for p in t.parents if p not in succeeded)
        for t in definition.tasks
        if t.name in again
    }
    reset = yield Statement(
        _RESET_TASKS,
        {
            "queued": TaskStatus.QUEUED,
            "pending": TaskStatus.PENDING,
            "tasks": list(pending),
            "pending_parents": list(pending.values()),
            "run_id": run_id,
        },
    )
    messages: list[outbox.OutboxMessage] = []
    deadlines: list[tuple[str, float]] = []
    run_events = [events.NewEvent(events.RUN_QUEUED, data={"replay": True})]
    deferred: list[str] = []  # to be placed on a worker by the scheduler (issue #21)
    for task_run_id, name, attempt, still_pending in sorted(reset, key=lambda r: r[1]):
        if still_pending:
            continue
        task = definition.by_name[name]
        if placing.needed(definition, task, run.desired_labels):
            deferred.append(str(task_run_id))
            deadline = dispatch.schedule_deadline(task)
            if deadline is not None:
                deadlines.append((str(task_run_id), deadline))
            continue
        run_events.append(events.NewEvent(events.TASK_QUEUED, name, attempt))
        message, deadline = dispatch.attempt(
            topology,
            task,
            tenant_id=run.tenant_id,
            workflow=definition.name,
            run_id=run_id,
            task_run_id=str(task_run_id),
            attempt=attempt,
            run_input=run.input,
            parent_outputs={p: succeeded.get(p) for p in task.parents},
            trace=run.trace,
            metadata=run.metadata,
            priority=run.priority,
        )
        messages.append(message)
        if deadline is not None:
            deadlines.append((str(task_run_id), deadline))
    yield from set_deadlines(deadlines)
    yield from placing.defer(deferred, unstick=run_id)
    yield Statement(
        _RESTART_RUN, {"running": RunStatus.RUNNING, "remaining": len(reset), "run_id": run_id}
    )
    if definition.concurrency is not None and run.concurrency_key:
        # A replayed run takes a place in its group again, like a new one.
        messages = [
            admission.run_waiter(
                run.tenant_id,
                run_id,
                run.concurrency_key,
                definition.concurrency.max_runs,
                messages,
            )
        ]
    written = yield from record.write(topology, run.events(run_events), messages)
    return written.outbox_rows
