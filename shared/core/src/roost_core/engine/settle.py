"""Runs whose every task has settled end (or start their on_failure handler first):
decisions.run_end decides which."""

from __future__ import annotations

import uuid
from typing import Any

from roost_core import admission, dispatch, events, fastjson, outbox
from roost_core.engine import decisions, placing, plan, record
from roost_core.engine.state import Conn, Definitions, RunState
from roost_core.queries import SQL
from roost_core.statuses import TaskStatus
from roost_core.topology import Topology
from roost_core.wire import WorkflowDefinition

_COUNT_SETTLED = SQL.count_settled
_TASKS_OF_RUNS = SQL.tasks_of_runs
_END_RUNS = SQL.end_runs
_QUEUE_ON_FAILURE = SQL.queue_on_failure
_ONE_REMAINING = SQL.one_task_remaining


def settle(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    runs: list[RunState],
    out: list[outbox.OutboxMessage],
) -> list[tuple[str, str]]:
    """Count the batch's settled tasks against their runs (those a statement has not
    counted already); end the runs with none left. A run that failed and has an
    on_failure handler not yet run gets it now instead, and ends once the handler has."""
    left = {r.id: r.remaining for r in runs if r.remaining is not None}
    counting = [r for r in runs if r.settled]
    if counting:
        for row in conn.execute(
            _COUNT_SETTLED,
            {"run_ids": [r.id for r in counting], "settled": [r.settled for r in counting]},
        ):
            left[str(row[0])] = row[1]
    for run in runs:
        run.settled, run.remaining = 0, None  # counted: a second settle counts nothing
    ended = [run_id for run_id, n in left.items() if n <= 0]
    if not ended:
        return []
    runs = [r for r in runs if r.id in left]
    tasks: dict[str, list[tuple[str, str, Any, Any]]] = {run_id: [] for run_id in ended}
    for row in conn.execute(_TASKS_OF_RUNS, {"run_ids": ended}):
        tasks[str(row[0])].append((row[1], row[2], row[3], row[4]))
    finals: list[tuple[str, str, str, str | None]] = []
    by_id = {r.id: r for r in runs}
    for run_id, rows in tasks.items():
        definition = definitions.get(conn, by_id[run_id].version_id)
        handler = definition.on_failure
        end = decisions.run_end(
            [decisions.SettledTask(n, TaskStatus(s), o, e) for n, s, o, e in rows],
            handler.name if handler is not None else None,
        )
        if isinstance(end, decisions.StartOnFailure):
            assert handler is not None
            start_on_failure(conn, topology, by_id[run_id], definition, end.errors, out)
            continue
        final, output, error = end.status, end.output, end.error
        finals.append(
            (run_id, final.value, fastjson.dumps(output), fastjson.dumps(error) if error else None)
        )
        by_id[run_id].status = final.value
        data = {"error": error} if error else {"output": output}
        by_id[run_id].event(events.run_final_type(final), data=data)
        if definitions.get(conn, by_id[run_id].version_id).concurrency is not None:
            by_id[run_id].released.append((run_id, admission.RUN_ATTEMPT))  # its group place
    if not finals:
        return []
    conn.execute(
        _END_RUNS,
        {
            "run_ids": [f[0] for f in finals],
            "statuses": [f[1] for f in finals],
            "outputs": [f[2] for f in finals],
            "errors": [f[3] for f in finals],
        },
    )
    plan.run(conn.cursor(), record.notify_final([f[0] for f in finals]))
    return [(run_id, final) for run_id, final, _, _ in finals]


def start_on_failure(
    conn: Conn,
    topology: Topology,
    run: RunState,
    definition: WorkflowDefinition,
    errors: dict[str, Any],
    out: list[outbox.OutboxMessage],
) -> None:
    """Queue the run's on_failure handler, with the errors of the tasks that failed."""
    handler = definition.on_failure
    assert handler is not None
    task_run_id = str(uuid.uuid4())
    message, deadline = dispatch.attempt(
        topology,
        handler,
        tenant_id=run.tenant_id,
        workflow=run.workflow,
        run_id=run.id,
        task_run_id=task_run_id,
        attempt=1,
        run_input=run.input,
        task_errors=errors,
        trace=run.trace,
        metadata=run.metadata,
        priority=run.priority,
    )
    conn.execute(
        _QUEUE_ON_FAILURE,
        {
            "task_run_id": task_run_id,
            "run_id": run.id,
            "task": handler.name,
            "queued": TaskStatus.QUEUED,
            "deadline": deadline,
        },
    )
    conn.execute(_ONE_REMAINING, {"run_id": run.id})
    if placing.needed(definition, handler, run.desired_labels):
        # To a chosen worker: the next timer pass places it (issue #21).
        plan.run(conn.cursor(), placing.defer([task_run_id]))
        return
    out.append(message)
    run.event(events.TASK_QUEUED, handler.name, 1)
