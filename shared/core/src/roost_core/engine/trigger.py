"""A trigger: new runs of a workflow version, their task runs, their first events and
their root tasks' messages, with a fixed number of statements however many runs there
are. A request whose idempotency key was already used for this workflow (or earlier in
the same list) gets the existing run and creates nothing. The workflow's concurrency
strategy may cancel runs to make room (roost_core.engine.concurrency)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from roost_core import admission, dag, dispatch, events, fastjson, outbox
from roost_core.engine import concurrency, control, placement, placing, priority, record
from roost_core.engine.placement import Placement
from roost_core.engine.plan import Plan, Statement
from roost_core.queries import SQL
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.topology import Topology
from roost_core.wire import WorkflowDefinition

_INSERT_RUNS = SQL.insert_runs
_EXISTING = SQL.runs_by_idempotency_key
_INSERT_TASK_RUNS = SQL.insert_task_runs
_LINK_PARENTS = SQL.link_parents


@dataclass(frozen=True)
class ParentLink:
    """The task a child run is triggered inside (issue #18), as the api resolved it."""

    run_id: str
    task_run_id: str
    task: str
    key: str


@dataclass(frozen=True)
class Request:
    """One run to create: its id (the caller's, so that its trace can name it), input,
    idempotency key, metadata, trace context, and the task it is a child of."""

    id: uuid.UUID
    input: Any
    idempotency_key: str | None = None
    metadata: dict[str, str] | None = None
    trace: dict[str, str] | None = None
    parent: ParentLink | None = None
    # Placement (issue #21): the run's override of its tasks' desired labels (JSON).
    desired_labels: dict[str, Any] | None = None
    priority: int | None = None  # 1-3; None: the workflow's default_priority, else 1


class TaskRow(NamedTuple):
    """A task run the trigger created."""

    id: uuid.UUID
    run_id: uuid.UUID
    name: str
    parents: list[str]
    root: bool


@dataclass(frozen=True)
class Triggered:
    inserted: dict[uuid.UUID, datetime]  # the runs created, with their created_at
    existing: dict[str, str]  # idempotency key -> the run that already had it
    task_rows: list[TaskRow]
    cancelled: set[str]  # runs the concurrency strategy cancelled (new or older)
    outbox_rows: list[outbox.OutboxRow]


def trigger(
    topology: Topology,
    tenant_id: str,
    workflow_id: str,
    version_id: str,
    definition: WorkflowDefinition,
    requests: Sequence[Request],
) -> Plan[Triggered]:
    """Create the runs of ``requests`` inside the caller's transaction."""
    groups = concurrency.group_keys(definition, [r.input for r in requests])
    run_ids = [r.id for r in requests]
    default = definition.default_priority or priority.DEFAULT
    priorities = [r.priority or default for r in requests]
    traces = [r.trace for r in requests]
    inserted: dict[uuid.UUID, Any] = {}
    created_rows = yield Statement(
        _INSERT_RUNS,
        {
            "tenant_id": tenant_id,
            "workflow_id": workflow_id,
            "version_id": version_id,
            "workflow": definition.name,
            "queued": RunStatus.QUEUED,
            "tasks": len(definition.tasks),
            "run_ids": run_ids,
            "inputs": [fastjson.dumps(r.input) for r in requests],
            "idempotency_keys": [r.idempotency_key for r in requests],
            "concurrency_keys": groups,
            "traces": [fastjson.dumps(t) if t else None for t in traces],
            "metadata": [fastjson.dumps(r.metadata) if r.metadata else None for r in requests],
            "desired_labels": [
                fastjson.dumps(r.desired_labels) if r.desired_labels else None for r in requests
            ],
            "priorities": priorities,
        },
    )
    for row in created_rows:
        inserted[row[0]] = row[1]
    # Runs the workflow's concurrency strategy cancels (the new runs are already counted
    # as active in their group: the plan leaves them out).
    limits = yield from concurrency.strategy(
        workflow_id,
        definition,
        groups,
        [rid in inserted for rid in run_ids],
        exclude=[rid for rid in run_ids if rid in inserted],
    )
    existing: dict[str, str] = {}
    keys = [
        r.idempotency_key
        for r, rid in zip(requests, run_ids, strict=True)
        if rid not in inserted and r.idempotency_key is not None
    ]
    if keys:
        found = yield Statement(
            _EXISTING, {"tenant_id": tenant_id, "workflow_id": workflow_id, "keys": keys}
        )
        existing = {key: str(rid) for key, rid in found}

    roots = set(dag.roots(definition))
    # Above the lowest priority: no higher than the queue's aged attempts (engine.priority).
    raised = any(p > priority.LOW for p in priorities)
    floors = (yield from priority.aged_floors([definition.name])) if raised else {}
    floor = floors.get(definition.name)
    # Roots of sticky runs and labelled roots are placed on a worker now (issue #21).
    root_ids, placed, stuck = yield from _place_roots(
        definition, requests, run_ids, groups, inserted
    )
    task_rows: list[TaskRow] = []
    deadlines: list[float | None] = []
    messages: list[outbox.OutboxMessage] = []
    new_events: list[events.RunEvents] = []
    for request, run_id, group, run_trace, run_priority in zip(
        requests, run_ids, groups, traces, priorities, strict=True
    ):
        if run_id in inserted:
            root_messages: list[outbox.OutboxMessage] = []
            at = inserted[run_id].timestamp()
            run_events = [events.NewEvent(events.RUN_QUEUED, at=at)]
            new_events.append(events.RunEvents(tenant_id, str(run_id), definition.name, run_events))
            for task in definition.tasks:
                task_run_id = root_ids.get((run_id, task.name)) or uuid.uuid4()
                is_root = task.name in roots
                task_rows.append(TaskRow(task_run_id, run_id, task.name, task.parents, is_root))
                deadline = None
                chosen = placed.get(str(task_run_id))
                if chosen is not None and chosen.waits:
                    # No live worker can take it: the scheduler looks again (its
                    # placement says why it waits; its schedule timeout runs).
                    deadline = dispatch.schedule_deadline(task)
                elif is_root:
                    message, deadline = dispatch.attempt(
                        topology,
                        task,
                        tenant_id=tenant_id,
                        workflow=definition.name,
                        run_id=str(run_id),
                        task_run_id=str(task_run_id),
                        attempt=1,
                        run_input=request.input,
                        trace=run_trace,
                        metadata=request.metadata,
                        queue=topology.worker_queue(chosen.worker_id)
                        if chosen is not None and chosen.worker_id is not None
                        else None,
                        priority=priority.effective(run_priority, floor)
                        if chosen is None or chosen.worker_id is None
                        else run_priority,
                    )
                    root_messages.append(message)
                    shown = placing.shown(chosen) if chosen is not None else None
                    run_events.append(
                        events.NewEvent(events.TASK_QUEUED, task.name, 1, shown, at=at)
                    )
                deadlines.append(deadline)
            if group is not None and definition.concurrency is not None:
                # The run waits for a place in its group; then its roots go on.
                root_messages = [
                    admission.run_waiter(
                        tenant_id,
                        str(run_id),
                        group,
                        definition.concurrency.max_runs,
                        root_messages,
                    )
                ]
            messages += root_messages
    if task_rows:
        yield Statement(
            _INSERT_TASK_RUNS,
            {
                "queued": TaskStatus.QUEUED,
                "pending": TaskStatus.PENDING,
                "ids": [t[0] for t in task_rows],
                "run_ids": [t[1] for t in task_rows],
                "names": [t[2] for t in task_rows],
                "parents": [",".join(t[3]) for t in task_rows],
                "pending_parents": [len(t[3]) for t in task_rows],
                "roots": [t[4] for t in task_rows],
                "deadlines": deadlines,
            },
            rows=False,
        )
    yield from placing.record(placed, stuck)
    links = [(rid, r.parent) for r, rid in zip(requests, run_ids, strict=True) if r.parent]
    if links:  # children of a task: linked to it (new ones only: an existing one is)
        yield from _link_parents([(rid, p) for rid, p in links if rid in inserted])
    written = yield from record.write(topology, new_events, messages)
    rows = written.outbox_rows
    to_cancel = [(rid, limits.reasons[rid]) for rid in limits.cancel_existing]
    to_cancel += [(str(run_ids[i]), limits.reasons[str(i)]) for i in sorted(limits.cancel_new)]
    cancelled = {cancel_id for cancel_id, _ in to_cancel}
    for cancel_id, why in to_cancel:
        _, cancel_rows = yield from control.cancel_run(topology, tenant_id, cancel_id, why)
        rows += cancel_rows

    return Triggered(
        inserted,
        existing,
        task_rows,
        cancelled,
        rows,
    )


def _place_roots(
    definition: WorkflowDefinition,
    requests: Sequence[Request],
    run_ids: list[uuid.UUID],
    groups: list[str | None],
    inserted: dict[uuid.UUID, Any],
) -> Plan[tuple[dict[tuple[uuid.UUID, str], uuid.UUID], dict[str, Placement], dict[str, Any]]]:
    """Place the new runs' roots that need it (sticky runs', labelled ones) on live
    workers: their task run ids (made here), the placements by task run id, and the
    workers sticky runs took. A run waiting for its concurrency place sends its roots to
    the shared queue (it sticks to where its first task reports from)."""
    roots = set(dag.roots(definition))
    ids: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
    wanted: list[placing.Wanted] = []
    for request, run_id, group in zip(requests, run_ids, groups, strict=True):
        if run_id not in inserted or group is not None:
            continue
        labels = placing.checked_labels(request.desired_labels)
        for task in definition.tasks:
            if task.name in roots and placing.needed(definition, task, labels):
                ids[(run_id, task.name)] = task_run_id = uuid.uuid4()
                desired = placement.merged_labels(task.desired_labels, labels)
                wanted.append(
                    (str(task_run_id), str(run_id), definition.name, definition.sticky, desired)
                )
    if not wanted:
        return ids, {}, {}
    placed, stuck = yield from placing.place_roots(definition.name, wanted)
    return ids, placed, stuck


def _link_parents(links: list[tuple[uuid.UUID, ParentLink]]) -> Plan[None]:
    if links:
        yield Statement(
            _LINK_PARENTS,
            {
                "run_ids": [rid for rid, _ in links],
                "parent_run_ids": [uuid.UUID(p.run_id) for _, p in links],
                "parent_task_run_ids": [uuid.UUID(p.task_run_id) for _, p in links],
                "parent_tasks": [p.task for _, p in links],
                "keys": [p.key for _, p in links],
            },
            rows=False,
        )
