"""Cancelling one task of a running run (``roost.runs.cancel_task``; ``ctx.cancel()`` is
the task's own, a report through roost_core.engine.failures). The task ends CANCELLED,
never retried; its descendants never start; independent branches go on; the run ends
CANCELLED once all has settled, if no task failed (decisions.run_end).

Written as a plan for the api. A task not yet started (PENDING) is cancelled here, with
its descendants. An active one (QUEUED, RUNNING, or a durable task WAITING) belongs to
the scheduler, which owns
attempts and settles runs: in the same transaction the api tells the workers to stop it
(CancelTasks) and asks the scheduler to end it (TaskCancelRequest, through the outbox,
so the request is as durable as the commit). If its attempt ends first, the request
finds it no longer active and changes nothing."""

from __future__ import annotations

from typing import Literal

from psycopg.types.json import Jsonb

from roost_core import dag, events, outbox
from roost_core.engine import record
from roost_core.engine.control import lock_run
from roost_core.engine.plan import Plan, Statement
from roost_core.errors import ConflictError, NotFoundError
from roost_core.queries import SQL
from roost_core.statuses import TaskStatus
from roost_core.topology import TASK_CANCEL, TASK_CANCEL_REQUEST, Topology
from roost_core.wire import CancelTasks, TaskCancelRequest

_TASK_RUN_OF = SQL.task_run_of
_HOLD_RETRY = SQL.hold_retry
_CANCEL_PENDING = SQL.cancel_pending_tasks
_COUNT_CANCELLED = SQL.count_cancelled

Outcome = Literal["CANCELLED", "CANCELLING"]


def cancel_task(
    topology: Topology, tenant_id: str, run_id: str, task: str, reason: str | None = None
) -> Plan[tuple[Outcome, list[outbox.OutboxRow]]]:
    """Cancel ``task`` of run ``run_id``: CANCELLED at once if it had not started,
    CANCELLING if the scheduler ends its active attempt. 404 for a task the run does
    not have; 409 for a run or task that has ended."""
    run = yield from lock_run(tenant_id, run_id)
    if task not in run.definition.by_name:
        raise NotFoundError(f"run {run_id} has no task {task!r}")
    if run.status.is_final:
        raise ConflictError(f"run {run_id} has ended {run.status}: nothing to cancel")
    rows = yield Statement(_TASK_RUN_OF, {"run_id": run_id, "task": task})
    if not rows:  # an on_failure handler not started: nothing of it exists yet
        raise ConflictError(f"task {task!r} of run {run_id} has not been created")
    task_run_id, status, attempt, waiting_retry = rows[0]
    status = TaskStatus(status)
    if status.is_final:
        raise ConflictError(f"task {task!r} of run {run_id} has ended {status} already")
    why = reason or f"task {task!r} was cancelled"
    error = {"type": "Cancelled", "message": why}
    if status == TaskStatus.PENDING:
        doomed = sorted({task, *dag.descendants(run.definition, [task])})
        upstream = {"type": "UpstreamCancelled", "message": f"not run: {task!r} was cancelled"}
        ended = yield Statement(
            _CANCEL_PENDING,
            {
                "cancelled": TaskStatus.CANCELLED,
                "pending": TaskStatus.PENDING,
                "run_id": run_id,
                "task": task,
                "tasks": doomed,
                "error": Jsonb(error),
                "upstream": Jsonb(upstream),
            },
        )
        # An ancestor is still active (else this task would not be pending): the run
        # settles when it does, in the scheduler.
        yield Statement(_COUNT_CANCELLED, {"run_id": run_id, "n": len(ended)}, rows=False)
        new = [
            events.NewEvent(
                events.TASK_CANCELLED, name, None, {"error": error if name == task else upstream}
            )
            for (name,) in sorted(ended)
        ]
        written = yield from record.write(topology, run.events(new), [])
        return "CANCELLED", written.outbox_rows
    if waiting_retry:  # a retry's backoff, or a durable task's wait: never sent now
        yield Statement(
            _HOLD_RETRY,
            {"task_run_id": task_run_id, "statuses": [TaskStatus.QUEUED, TaskStatus.WAITING]},
            rows=False,
        )
    request = TaskCancelRequest(
        run_id=run_id, task_run_id=str(task_run_id), task=task, attempt=attempt, reason=why
    )
    stop = CancelTasks(run_id=run_id, task_run_ids=[str(task_run_id)])
    messages = [
        outbox.OutboxMessage(
            topology.events_exchange, TASK_CANCEL_REQUEST, request.model_dump_json().encode()
        ),
        outbox.OutboxMessage(
            topology.control_exchange,
            TASK_CANCEL,
            stop.model_dump_json().encode(),
            mandatory=False,
        ),
    ]
    written = yield from record.write(topology, [], messages)
    return "CANCELLING", written.outbox_rows
