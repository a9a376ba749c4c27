"""Ready attempts become task messages: their parents' outputs, their schedule
deadlines, and the retries whose backoff is over."""

from __future__ import annotations

import dataclasses
from typing import Any

from roost_core import admission, dispatch, events, outbox
from roost_core.engine import decisions, places, placing, plan, priority
from roost_core.engine.plan import Plan, Statement
from roost_core.engine.state import Conn, Definitions, RunState
from roost_core.queries import SQL
from roost_core.topology import Topology

_PARENT_OUTPUTS = SQL.parent_outputs
_TASK_ERRORS = SQL.failed_task_errors
_SET_DEADLINES = SQL.set_schedule_deadlines
_FIRE_OF_TASKS = SQL.fire_due_retries_of_tasks
_FIRE_OF_RUNS = SQL.fire_due_retries_of_runs


def dispatch_ready(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    runs: dict[str, RunState],
    ready: list[tuple[str, str, str, int]],
    out: list[outbox.OutboxMessage],
    known: dict[tuple[str, str], Any] | None = None,
    *,
    event: str = events.TASK_QUEUED,
    admitted: bool = False,
    journals: dict[str, Any] | None = None,
    waited: set[str] | None = None,
) -> None:
    """Write the task messages of ``ready`` attempts (task run id, run id, task name,
    attempt), already QUEUED in task_runs, with their parents' outputs, and set the
    schedule deadlines of those that have one. ``admitted``: the attempts passed the
    ratelimiter already (a redispatch), so they go straight to their queue. ``journals``:
    the durable calls a durable task's attempt replays, by task run id. ``waited``:
    attempts that waited for a live worker to place them on (looked at again now)."""
    outputs = dict(known or {})
    wanted: set[tuple[str, str]] = set()
    for _, run_id, name, _ in ready:
        task = definitions.get(conn, runs[run_id].version_id).by_name[name]
        wanted.update((run_id, p) for p in task.parents)
    missing = sorted(wanted - outputs.keys())
    if missing:  # parents that finished in an earlier batch
        for run_id, task_name, output in conn.execute(
            _PARENT_OUTPUTS, plan.columns(("run_ids", "tasks"), missing)
        ):
            outputs[(str(run_id), task_name)] = output
    # Sticky runs' and labelled tasks' attempts go to a chosen worker process's queue.
    was_stuck = {r.id: r.sticky_worker for r in runs.values()}
    decided = placing.place_ready(conn, definitions, runs, ready)
    # Runs above the lowest priority go no higher than their queue's aged attempts.
    raised = {runs[r].workflow for _, r, _, _ in ready if runs[r].priority > priority.LOW}
    floors = plan.run(conn.cursor(), priority.aged_floors(raised)) if raised else {}
    deadlines: list[tuple[str, float]] = []
    for task_run_id, run_id, name, attempt in ready:
        run = runs[run_id]
        definition = definitions.get(conn, run.version_id)
        task = definition.by_name[name]
        handler = definition.on_failure
        chosen = decided.get(task_run_id)
        again = task_run_id in (waited or ())  # it waited for a worker already
        message, deadline = dispatch.attempt(
            topology,
            task,
            tenant_id=run.tenant_id,
            workflow=run.workflow,
            run_id=run.id,
            task_run_id=task_run_id,
            attempt=attempt,
            run_input=run.input,
            parent_outputs={p: outputs.get((run.id, p)) for p in task.parents},
            # A retried failure handler needs the failures it handles, as its first
            # attempt had them (settle.start_on_failure).
            task_errors=_task_errors(conn, run.id, name)
            if handler and name == handler.name
            else None,
            trace=run.trace,
            metadata=run.metadata,
            journal=(journals or {}).get(task_run_id),
            queue=topology.worker_queue(chosen.worker_id)
            if chosen is not None and chosen.worker_id is not None
            else None,
            priority=priority.effective(run.priority, floors.get(run.workflow))
            if chosen is None or chosen.worker_id is None
            else run.priority,
        )
        if deadline is not None and not again:  # a wait for a worker keeps its deadline
            deadlines.append((task_run_id, deadline))
        if chosen is not None and (chosen.waits or chosen.error is not None):
            if not again:  # said once, not at every look
                run.event(event, name, attempt, placing.shown(chosen))
            continue  # not sent: it waits for a worker, or the timer pass fails it
        out.append(dataclasses.replace(message, admission=None) if admitted else message)
        run.event(event, name, attempt, placing.shown(chosen) if chosen else None)
    stuck = {r: runs[r].sticky_worker for r, w in was_stuck.items() if runs[r].sticky_worker != w}
    plan.run(conn.cursor(), set_deadlines(deadlines))
    if decided or stuck:  # plain tasks of plain runs: nothing to write
        plan.run(conn.cursor(), placing.record(decided, stuck))


def _task_errors(conn: Conn, run_id: str, handler: str) -> dict[str, Any]:
    """The errors of a run's failed tasks, by task, as its failure handler gets them."""
    rows = conn.execute(
        _TASK_ERRORS,
        {
            "run_id": run_id,
            "failures": [s.value for s in decisions.FAILURES],
            "handler": handler,
        },
    ).fetchall()
    return {name: error or {} for name, error in sorted(rows)}


def set_deadlines(deadlines: list[tuple[str, float]]) -> Plan[None]:
    """Give QUEUED attempts (task run id, unix time) their schedule deadlines."""
    if deadlines:
        yield Statement(_SET_DEADLINES, plan.columns(("task_run_ids", "deadlines"), deadlines))


def fire_dispatches(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    runs: dict[str, RunState],
    out: list[outbox.OutboxMessage],
    task_run_ids: list[str] | None = None,
) -> int:
    """Send the retries whose backoff is over, and the durable tasks whose wait is (of
    ``runs``, or just ``task_run_ids``)."""
    if task_run_ids is not None:
        rows = conn.execute(_FIRE_OF_TASKS, {"task_run_ids": task_run_ids}).fetchall()
    else:
        rows = conn.execute(_FIRE_OF_RUNS, {"run_ids": [r.id for r in runs.values()]}).fetchall()
    ready = [(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]
    journals = {str(r[0]): r[4] for r in rows if r[4]}
    if not ready:
        return 0
    waited = {str(r[0]) for r in rows if r[6]}
    for _, run_id, name, attempt, _, approval_id, _ in rows:
        if approval_id is not None:  # its timeout passed with no decision: the log says so
            runs[str(run_id)].event(
                events.TASK_APPROVAL,
                name,
                attempt - 1,  # the attempt that asked; the one sent now resumes
                {"approval_id": approval_id, "status": "EXPIRED", "approved": None},
            )
    limited = sorted(
        {
            run_id
            for _, run_id, _, _ in ready
            if definitions.get(conn, runs[run_id].version_id).concurrency is not None
        }
    )
    # Runs that gave back their group place while their tasks waited take one again
    # first: their resumed attempts wait for it as a new run's roots do.
    needed = places.places_needed(conn, limited) if limited else {}
    plain = [r for r in ready if r[1] not in needed]
    if plain:
        dispatch_ready(
            conn, topology, definitions, runs, plain, out, journals=journals, waited=waited
        )
    for run_id, key in needed.items():
        run = runs[run_id]
        held: list[outbox.OutboxMessage] = []
        mine = [r for r in ready if r[1] == run_id]
        dispatch_ready(
            conn, topology, definitions, runs, mine, held, journals=journals, waited=waited
        )
        concurrency = definitions.get(conn, run.version_id).concurrency
        assert concurrency is not None
        out.append(admission.run_waiter(run.tenant_id, run_id, key, concurrency.max_runs, held))
    return len(ready)
