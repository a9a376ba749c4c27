"""What a person or program does to a whole run: cancel it, or replay it once it has
ended. Written as plans (roost_core.engine.plan): the api runs them on its async
connections, inside the transaction of the request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from roost_core import admission, dag, dispatch, events, outbox
from roost_core.engine import record
from roost_core.engine.plan import Plan, Statement
from roost_core.engine.ready import set_deadlines
from roost_core.errors import ConflictError, UnknownRunError
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.topology import TASK_CANCEL, Topology
from roost_core.wire import CancelTasks, WorkflowDefinition


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
    rows = yield Statement(
        "SELECT r.id::text, r.status, r.input, r.workflow_name, r.tenant_id::text,"
        " r.concurrency_key, r.trace, v.definition FROM runs r"
        " JOIN workflow_versions v ON v.id = r.workflow_version_id"
        " WHERE r.id = %s AND r.tenant_id = %s FOR UPDATE OF r",
        (run_id, tenant_id),
    )
    if not rows:
        raise UnknownRunError(f"run {run_id!r} not found")
    r = rows[0]
    return LockedRun(
        r[0], RunStatus(r[1]), r[2], r[3], r[4], r[5], r[6], WorkflowDefinition.model_validate(r[7])
    )


def cancel_run(
    topology: Topology, tenant_id: str, run_id: str, reason: str | None = None
) -> Plan[tuple[bool, list[outbox.OutboxRow]]]:
    """Cancel a run: every task not yet final ends CANCELLED (queued ones never start,
    running ones are told to stop), and so does the run. Returns whether anything
    changed (a run already ended is left as it is) and the outbox rows to publish after
    commit."""
    run = yield from lock_run(tenant_id, run_id)
    if run.status.is_final:
        return False, []
    error = {"type": "Cancelled", "message": reason or f"run {run_id} was cancelled"}
    ended = yield Statement(
        "UPDATE task_runs SET status = %s, error = %s, finished_at = now(),"
        " dispatch_at = NULL, deadline_at = NULL"
        " WHERE run_id = %s AND status = ANY(%s)"
        " RETURNING id, attempt, status, worker_id, queued_at, started_at, task_name",
        (
            TaskStatus.CANCELLED,
            Jsonb(error),
            run_id,
            [TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.RUNNING],
        ),
    )
    stopped = [r for r in ended if r[1] > 0]
    if stopped:
        # The attempts that were on a queue or a worker end CANCELLED in the record too.
        yield Statement(
            "INSERT INTO task_attempts (task_run_id, attempt, status, worker_id, error,"
            " queued_at, started_at, finished_at)"
            " SELECT v.id, v.a, %s, v.w, %s, v.q, v.s, now()"
            " FROM unnest(%s::uuid[], %s::int[], %s::text[], %s::timestamptz[],"
            "   %s::timestamptz[]) AS v(id, a, w, q, s) ON CONFLICT DO NOTHING",
            (
                TaskStatus.CANCELLED,
                Jsonb(error),
                [r[0] for r in stopped],
                [r[1] for r in stopped],
                [r[3] for r in stopped],
                [r[4] for r in stopped],
                [r[5] for r in stopped],
            ),
        )
    yield Statement(
        "UPDATE runs SET status = %s, finished_at = now(), remaining_tasks = 0,"
        " error = %s, output = (SELECT jsonb_object_agg(task_name, output) FROM task_runs"
        "   WHERE run_id = %s AND status = %s)"
        " WHERE id = %s",
        (
            RunStatus.CANCELLED,
            Jsonb({"message": reason or f"run {run_id} was cancelled"}),
            run_id,
            TaskStatus.SUCCEEDED,
            run_id,
        ),
    )
    yield from record.notify_final([run_id])
    run_events = [
        events.NewEvent(events.TASK_CANCELLED, r[6], r[1] or None, {"error": error})
        for r in sorted(ended, key=lambda r: r[6])
    ]
    run_events.append(events.NewEvent(events.RUN_CANCELLED, data={"error": error}))
    messages: list[outbox.OutboxMessage] = []
    # Attempts waiting for admission leave the queue; running ones free their units.
    held = [(str(r[0]), r[1]) for r in stopped if run.definition.by_name[r[6]].rate_limits]
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
    return True, written.outbox_rows


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
        # The failure handler runs again only if the replay fails too.
        yield Statement(
            "DELETE FROM task_runs WHERE run_id = %s AND task_name = %s",
            (run_id, definition.on_failure.name),
        )
    rows = yield Statement(
        "SELECT task_name, status, output FROM task_runs WHERE run_id = %s", (run_id,)
    )
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
        "UPDATE task_runs t SET status = CASE WHEN v.pending = 0 THEN %s ELSE %s END,"
        " pending_parents = v.pending, output = NULL, error = NULL, worker_id = NULL,"
        " started_at = NULL, finished_at = NULL, dispatch_at = NULL, deadline_at = NULL,"
        " retry_base = t.attempt,"  # a replayed task has its whole retry budget again
        " attempt = CASE WHEN v.pending = 0 THEN t.attempt + 1 ELSE t.attempt END,"
        " queued_at = CASE WHEN v.pending = 0 THEN now() END"
        " FROM unnest(%s::text[], %s::int[]) AS v(name, pending)"
        " WHERE t.run_id = %s AND t.task_name = v.name"
        " RETURNING t.id, t.task_name, t.attempt, v.pending",
        (TaskStatus.QUEUED, TaskStatus.PENDING, list(pending), list(pending.values()), run_id),
    )
    messages: list[outbox.OutboxMessage] = []
    deadlines: list[tuple[str, float]] = []
    run_events = [events.NewEvent(events.RUN_QUEUED, data={"replay": True})]
    for task_run_id, name, attempt, still_pending in sorted(reset, key=lambda r: r[1]):
        if still_pending:
            continue
        run_events.append(events.NewEvent(events.TASK_QUEUED, name, attempt))
        task = definition.by_name[name]
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
        )
        messages.append(message)
        if deadline is not None:
            deadlines.append((str(task_run_id), deadline))
    yield from set_deadlines(deadlines)
    yield Statement(
        "UPDATE runs SET status = %s, remaining_tasks = %s, finished_at = NULL, error = NULL,"
        " output = NULL WHERE id = %s",
        (RunStatus.RUNNING, len(reset), run_id),
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
