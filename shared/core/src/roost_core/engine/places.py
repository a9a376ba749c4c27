"""A run's place in its workflow's concurrency group while its durable tasks wait
(issue #18: a waiting task holds nothing). A run takes a place when it is admitted
(roost_core.admission's run waiter) and holds it until it ends; while every task it has
left waits, it gives the place back, and takes one again, in its turn, before a task of
it resumes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from roost_core import admission
from roost_core.engine.state import ACTIVE, Conn, RunState
from roost_core.queries import SQL
from roost_core.statuses import RunStatus

_IDLE = SQL.runs_without_active_tasks
_NEEDING_PLACES = SQL.runs_needing_places


def give_back_places(conn: Conn, runs: Iterable[RunState]) -> None:
    """At the end of a batch: each run whose task suspended in it (``run.suspended``)
    and that has no active task left gives back its place in its workflow's concurrency
    group, so that another run of the group can go on while it waits; it takes a place
    again, in its turn, before it resumes (``readmitted``). Checked once every transition
    of the batch is written, so a task made ready by the same batch keeps the place."""
    waiting = [r for r in runs if r.suspended and not RunStatus(r.status).is_final]
    if not waiting:
        return
    idle = conn.execute(_IDLE, {"run_ids": [r.id for r in waiting], "statuses": ACTIVE}).fetchall()
    idle_ids = {str(row[0]) for row in idle}
    for run in waiting:
        if run.id in idle_ids:
            run.released.append((run.id, admission.RUN_ATTEMPT))


def places_needed(conn: Conn, run_ids: Sequence[str]) -> dict[str, str]:
    """Of ``run_ids`` (runs of workflows with a concurrency limit, about to send a
    resumed attempt), those that gave back their group place while they waited: their
    group keys, by run id."""
    rows = conn.execute(_NEEDING_PLACES, {"run_ids": list(run_ids)}).fetchall()
    return {str(run_id): key for run_id, key in rows}
