"""Placing ready attempts (issue #21): which of them need a chosen worker process, the
live processes that could take them, the decisions (roost_core.engine.placement), and
what the engine writes of them. Plain tasks of non-sticky runs cost nothing here."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import TypeAdapter

from roost_core.engine import placement, plan
from roost_core.engine.placement import Candidate, Placement
from roost_core.engine.plan import Plan, Statement
from roost_core.engine.state import Conn, Definitions, RunState
from roost_core.engine.workers import live_candidates
from roost_core.labels import DesiredLabel
from roost_core.queries import SQL

_RECORD = SQL.record_placements
_STICK = SQL.stick_runs
_DEFER = SQL.defer_placement

# What a task to be placed by the scheduler (sent by its next timer pass) says meanwhile.
DEFERRED = {"waits": "to be placed on a worker by the scheduler"}

# How soon an attempt no live worker can take is looked at again.
RETRY_SECONDS = 1.0

_RUN_LABELS = TypeAdapter(dict[str, DesiredLabel])


def run_labels(run: RunState) -> Mapping[str, DesiredLabel] | None:
    """A run's override of its tasks' desired labels (checked at its trigger)."""
    return checked_labels(run.desired_labels)


def checked_labels(labels: Mapping[str, Any] | None) -> Mapping[str, DesiredLabel] | None:
    """Desired labels as JSON (a run's override) as DesiredLabels; None for none."""
    return _RUN_LABELS.validate_python(labels) if labels else None


def needed(definition: Any, task: Any, labels: Mapping[str, Any] | None) -> bool:
    """Whether an attempt of ``task`` must be placed: its run is sticky, or it (or its
    run's override, ``labels``) desires labels."""
    return definition.sticky is not None or bool(task.desired_labels) or bool(labels)


def defer(task_run_ids: list[str], *, unstick: str | None = None) -> Plan[None]:
    """Leave QUEUED attempts to be placed by the scheduler's next timer pass (from the
    api, which does not place: a trigger, a replay). ``unstick``: a replayed run starts
    afresh, free of the worker its earlier tasks stuck to."""
    if task_run_ids:
        yield Statement(
            _DEFER,
            {"task_run_ids": task_run_ids, "placement": json.dumps(DEFERRED), "run_id": unstick},
            rows=False,
        )


def place_ready(
    conn: Conn,
    definitions: Definitions,
    runs: dict[str, RunState],
    ready: list[tuple[str, str, str, int]],
) -> dict[str, Placement]:
    """The placements of those ``ready`` attempts (task run id, run id, task name,
    attempt) that need one, by task run id. A sticky run without a worker takes the one
    its first placed attempt got (``run.sticky_worker``; written by ``record``)."""
    wanted: list[tuple[str, RunState, Any, Mapping[str, DesiredLabel]]] = []
    for task_run_id, run_id, name, _ in ready:
        run = runs[run_id]
        definition = definitions.get(conn, run.version_id)
        desired = placement.merged_labels(definition.by_name[name].desired_labels, run_labels(run))
        if definition.sticky is not None or desired:
            wanted.append((task_run_id, run, definition.sticky, desired))
    if not wanted:
        return {}
    workflows = sorted({run.workflow for _, run, _, _ in wanted})
    candidates = plan.run(conn.cursor(), live_candidates(workflows))
    stuck = {run.id: run.sticky_worker for _, run, _, _ in wanted}
    decided = decide(
        [(t, run.id, run.workflow, sticky, desired) for t, run, sticky, desired in wanted],
        candidates,
        stuck,
    )
    for run_id, worker in stuck.items():
        runs[run_id].sticky_worker = worker
    return decided


Wanted = tuple[str, str, str, placement.Sticky, Mapping[str, DesiredLabel]]


def decide(
    wanted: Sequence[Wanted],
    candidates: Mapping[str, Sequence[Candidate]],
    sticky_workers: dict[str, str | None],
) -> dict[str, Placement]:
    """Place each wanted attempt (task run id, run id, workflow, sticky, desired labels)
    in turn, counting what this batch placed as load; ``sticky_workers`` (run id ->
    worker) is updated where a sticky run gets or moves to a worker."""
    extra: Counter[str] = Counter()  # placed in this batch
    decided: dict[str, Placement] = {}
    for task_run_id, run_id, workflow, sticky, desired in wanted:
        loaded = [
            dataclasses.replace(c, load=c.load + extra[c.id]) if extra[c.id] else c
            for c in candidates.get(workflow, ())
        ]
        mine = sticky_workers.get(run_id)
        chosen = placement.place(workflow, desired, sticky, mine, loaded)
        if chosen.worker_id is not None:
            extra[chosen.worker_id] += 1
            if sticky is not None and (mine is None or chosen.moved):
                sticky_workers[run_id] = chosen.worker_id
        decided[task_run_id] = chosen
    return decided


def place_roots(
    workflow: str, wanted: Sequence[Wanted]
) -> Plan[tuple[dict[str, Placement], dict[str, str | None]]]:
    """The placements of a trigger's root attempts that need one (the api's, in its
    transaction: no wait for the scheduler's timer pass), and the workers the sticky
    runs among them took (run id -> worker)."""
    if not wanted:
        return {}, {}
    candidates = yield from live_candidates([workflow])
    stuck: dict[str, str | None] = {}
    decided = decide(wanted, candidates, stuck)
    return decided, {r: w for r, w in stuck.items() if w is not None}


def shown(chosen: Placement) -> dict[str, str] | None:
    """A placement as the attempt shows it (HTTP, events): where and why, or why it
    waits, or why it cannot go on; None for the shared queue with nothing to say."""
    if chosen.error is not None:
        return {"error": chosen.error}
    if chosen.waits:
        return {"waits": chosen.reason or ""}
    if chosen.worker_id is not None:
        return {"worker_id": chosen.worker_id, "reason": chosen.reason or ""}
    return {"reason": chosen.reason} if chosen.reason else None


def record(decided: Mapping[str, Placement], stuck: Mapping[str, str | None]) -> Plan[None]:
    """Write placements on their task runs: where each attempt went; one that waits is
    looked at again in RETRY_SECONDS (its schedule deadline still runs); one that cannot
    go on gets a deadline of now, and the timer pass fails it with its reason. Sticky
    runs that just got their worker, or moved to another (``stuck``: run id -> worker),
    keep it."""
    if decided:
        ids = list(decided)
        yield Statement(
            _RECORD,
            {
                "task_run_ids": ids,
                "workers": [decided[i].worker_id for i in ids],
                "placements": [json.dumps(shown(decided[i])) for i in ids],
                "waits": [decided[i].waits for i in ids],
                "failed": [decided[i].error is not None for i in ids],
                "retry_seconds": RETRY_SECONDS,
            },
            rows=False,
        )
    if stuck:
        yield Statement(
            _STICK,
            {"run_ids": sorted(stuck), "workers": [stuck[r] for r in sorted(stuck)]},
            rows=False,
        )


class _Reported(Protocol):
    @property
    def run_id(self) -> str: ...

    @property
    def worker_id(self) -> str | None: ...


def stick_where_reported(
    conn: Conn, definitions: Definitions, runs: Mapping[str, RunState], reports: Sequence[_Reported]
) -> None:
    """Sticky runs with no worker yet (their first tasks were sent to the shared queue,
    behind a workflow concurrency place) stick to the worker of their first report."""
    sticky: dict[str, str] = {}
    for report in reports:
        run = runs.get(report.run_id)
        if run is None or run.sticky_worker is not None or report.worker_id is None:
            continue
        if definitions.get(conn, run.version_id).sticky is not None:
            sticky.setdefault(run.id, report.worker_id)
    if sticky:
        conn.execute(_STICK, {"run_ids": list(sticky), "workers": list(sticky.values())})
        for run_id, worker_id in sticky.items():
            runs[run_id].sticky_worker = worker_id
