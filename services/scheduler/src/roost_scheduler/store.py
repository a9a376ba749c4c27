"""Every SQL statement the scheduler runs: applying a batch of worker reports in one
transaction.

Each transition is guarded by ``(task_run_id, attempt)`` and the current status, so a
redelivered or duplicated report changes nothing. The common reports (started,
succeeded) are applied set-wise: a batch costs a fixed handful of statements whatever
its size, because on this path the scheduler waits on PostgreSQL round trips more than
it computes. Failures are rare and go one by one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from roost_core import dag, outbox
from roost_core.dispatch import task_attempt_message
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.topology import Topology
from roost_core.wire import (
    TaskFailed,
    TaskMessage,
    TaskReport,
    TaskStarted,
    TaskSucceeded,
    WorkflowDefinition,
)

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
RUN_FINAL_CHANNEL = "roost_run_final"
ACTIVE = [TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]


@dataclass
class _Run:
    id: str
    status: str
    input: Any
    workflow: str
    version_id: str
    first_report_at: float | None = None
    settled: int = 0  # tasks this batch moved to a final state


@dataclass
class BatchOutcome:
    outbox_rows: list[outbox.OutboxRow]
    finished_runs: list[tuple[str, str]]  # (run id, final status)
    applied: int
    ignored: int


class Definitions:
    """Workflow versions are immutable, so each is read from PostgreSQL once."""

    def __init__(self) -> None:
        self._cache: dict[str, WorkflowDefinition] = {}

    def get(self, conn: Conn, version_id: str) -> WorkflowDefinition:
        found = self._cache.get(version_id)
        if found is None:
            row = conn.execute(
                "SELECT definition FROM workflow_versions WHERE id = %s", (version_id,)
            ).fetchone()
            assert row is not None, f"workflow version {version_id} vanished"
            found = self._cache[version_id] = WorkflowDefinition.model_validate(row[0])
        return found


def apply_reports(
    conn: Conn, topology: Topology, definitions: Definitions, reports: list[TaskReport]
) -> BatchOutcome:
    """Apply ``reports`` inside the caller's transaction."""
    runs = _lock_runs(conn, sorted({r.run_id for r in reports}))
    live: list[TaskReport] = []
    for report in reports:
        run = runs.get(report.run_id)
        if run is None or RunStatus(run.status).is_final:
            continue  # unknown or already ended: nothing may change it
        live.append(report)
        if run.first_report_at is None or report.started_at < run.first_report_at:
            run.first_report_at = report.started_at
    _mark_runs_running(
        conn,
        [
            r
            for r in runs.values()
            if r.status == RunStatus.QUEUED and r.first_report_at is not None
        ],
    )

    applied = _apply_started(conn, [r for r in live if isinstance(r, TaskStarted)])
    messages: list[outbox.OutboxMessage] = []
    applied += _apply_succeeded(
        conn, topology, runs, [r for r in live if isinstance(r, TaskSucceeded)], messages
    )
    for report in live:
        if isinstance(report, TaskFailed) and _fail(conn, definitions, runs[report.run_id], report):
            applied += 1

    finished = _settle(conn, [r for r in runs.values() if r.settled])
    return BatchOutcome(
        outbox.insert(conn.cursor(), messages), finished, applied, len(reports) - applied
    )


def _lock_runs(conn: Conn, run_ids: list[str]) -> dict[str, _Run]:
    """Lock every run the batch touches, in id order, so two scheduler replicas never
    deadlock and each sees the other's committed work on the same run."""
    runs: dict[str, _Run] = {}
    for row in conn.execute(
        "SELECT id, status, input, workflow_name, workflow_version_id FROM runs"
        " WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
        (run_ids,),
    ):
        runs[str(row[0])] = _Run(str(row[0]), row[1], row[2], row[3], str(row[4]))
    return runs


def _mark_runs_running(conn: Conn, runs: Sequence[_Run]) -> None:
    if not runs:
        return
    conn.execute(
        "UPDATE runs SET status = %s, started_at = to_timestamp(v.at)"
        " FROM unnest(%s::uuid[], %s::float8[]) AS v(id, at)"
        " WHERE runs.id = v.id AND runs.status = %s",
        (
            RunStatus.RUNNING,
            [r.id for r in runs],
            [r.first_report_at for r in runs],
            RunStatus.QUEUED,
        ),
    )
    for run in runs:
        run.status = RunStatus.RUNNING


def _apply_started(conn: Conn, reports: list[TaskStarted]) -> int:
    if not reports:
        return 0
    cur = conn.execute(
        "UPDATE task_runs t SET status = %s, started_at = to_timestamp(v.at), worker_id = v.w"
        " FROM unnest(%s::uuid[], %s::int[], %s::float8[], %s::text[]) AS v(id, a, at, w)"
        " WHERE t.id = v.id AND t.attempt = v.a AND t.status = %s",
        (
            TaskStatus.RUNNING,
            [r.task_run_id for r in reports],
            [r.attempt for r in reports],
            [r.started_at for r in reports],
            [r.worker_id for r in reports],
            TaskStatus.QUEUED,
        ),
    )
    return cur.rowcount


def _apply_succeeded(
    conn: Conn,
    topology: Topology,
    runs: dict[str, _Run],
    reports: list[TaskSucceeded],
    out: list[outbox.OutboxMessage],
) -> int:
    """Record results, make ready the children whose last parent this was, and write
    their task messages. A task's succeeded attempt is recorded by its task_runs row
    itself (the api lists it as the current attempt): only attempts that went wrong get
    a task_attempts row."""
    if not reports:
        return 0
    done = conn.execute(
        "UPDATE task_runs t SET status = %s, output = v.o::jsonb, worker_id = v.w,"
        " started_at = to_timestamp(v.s), finished_at = to_timestamp(v.f)"
        " FROM unnest(%s::uuid[], %s::int[], %s::text[], %s::text[], %s::float8[],"
        "   %s::float8[]) AS v(id, a, o, w, s, f)"
        " WHERE t.id = v.id AND t.attempt = v.a AND t.status = ANY(%s)"
        " RETURNING t.run_id, t.task_name, t.output",
        (
            TaskStatus.SUCCEEDED,
            [r.task_run_id for r in reports],
            [r.attempt for r in reports],
            [json.dumps(r.output) for r in reports],
            [r.worker_id for r in reports],
            [r.started_at for r in reports],
            [r.finished_at for r in reports],
            ACTIVE,
        ),
    ).fetchall()
    if not done:
        return 0
    outputs: dict[tuple[str, str], Any] = {}
    for run_id, task, output in done:
        outputs[(str(run_id), task)] = output
        runs[str(run_id)].settled += 1

    # Children of the finished tasks: one less pending parent each; at zero, queued.
    children = conn.execute(
        "UPDATE task_runs c SET pending_parents = c.pending_parents - d.n,"
        " status = CASE WHEN c.pending_parents = d.n THEN %s ELSE c.status END,"
        " attempt = CASE WHEN c.pending_parents = d.n THEN 1 ELSE c.attempt END,"
        " queued_at = CASE WHEN c.pending_parents = d.n THEN now() ELSE c.queued_at END"
        " FROM (SELECT k.id, count(*)::int AS n FROM task_runs k"
        "       JOIN unnest(%s::uuid[], %s::text[]) AS f(run_id, task)"
        "         ON k.run_id = f.run_id AND f.task = ANY(k.parents)"
        "       WHERE k.status = %s GROUP BY k.id) AS d"
        " WHERE c.id = d.id AND c.pending_parents >= d.n"
        " RETURNING c.id, c.run_id, c.task_name, c.pending_parents, c.parents",
        (
            TaskStatus.QUEUED,
            [k[0] for k in outputs],
            [k[1] for k in outputs],
            TaskStatus.PENDING,
        ),
    ).fetchall()
    ready = [row for row in children if row[3] == 0]
    if not ready:
        return len(done)

    # Parents that finished in an earlier batch: read their outputs in one go.
    missing = sorted(
        {(str(run_id), p) for _, run_id, _, _, parents in ready for p in parents} - outputs.keys()
    )
    if missing:
        for run_id, task, output in conn.execute(
            "SELECT t.run_id, t.task_name, t.output FROM task_runs t"
            " JOIN unnest(%s::uuid[], %s::text[]) AS m(run_id, task)"
            "   ON t.run_id = m.run_id AND t.task_name = m.task",
            ([m[0] for m in missing], [m[1] for m in missing]),
        ):
            outputs[(str(run_id), task)] = output

    for task_run_id, run_id, name, _, parents in ready:
        run = runs[str(run_id)]
        out.append(
            task_attempt_message(
                topology,
                TaskMessage(
                    run_id=run.id,
                    task_run_id=str(task_run_id),
                    workflow=run.workflow,
                    task=name,
                    attempt=1,
                    input=run.input,
                    parent_outputs={p: outputs.get((run.id, p)) for p in parents},
                ),
            )
        )
    return len(done)


def _fail(conn: Conn, definitions: Definitions, run: _Run, r: TaskFailed) -> bool:
    error = r.error.model_dump()
    row = conn.execute(
        "UPDATE task_runs SET status = %s, error = %s, worker_id = %s,"
        " started_at = to_timestamp(%s), finished_at = to_timestamp(%s)"
        " WHERE id = %s AND attempt = %s AND status = ANY(%s) RETURNING queued_at",
        (
            TaskStatus.FAILED,
            Jsonb(error),
            r.worker_id,
            r.started_at,
            r.finished_at,
            r.task_run_id,
            r.attempt,
            ACTIVE,
        ),
    ).fetchone()
    if row is None:
        return False
    conn.execute(
        "INSERT INTO task_attempts (task_run_id, attempt, status, worker_id, error, queued_at,"
        " started_at, finished_at) VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s),"
        " to_timestamp(%s)) ON CONFLICT DO NOTHING",
        (
            r.task_run_id,
            r.attempt,
            TaskStatus.FAILED,
            r.worker_id,
            Jsonb(error),
            row[0],
            r.started_at,
            r.finished_at,
        ),
    )
    run.settled += 1
    # Descendants of a failed task never start; independent branches go on.
    doomed = dag.descendants(definitions.get(conn, run.version_id), [r.task])
    if doomed:
        cur = conn.execute(
            "UPDATE task_runs SET status = %s, error = %s, finished_at = now()"
            " WHERE run_id = %s AND task_name = ANY(%s) AND status = %s",
            (
                TaskStatus.CANCELLED,
                Jsonb(
                    {
                        "type": "UpstreamFailed",
                        "message": f"not run: upstream task {r.task!r} failed",
                    }
                ),
                run.id,
                sorted(doomed),
                TaskStatus.PENDING,
            ),
        )
        run.settled += cur.rowcount
    return True


def _settle(conn: Conn, runs: list[_Run]) -> list[tuple[str, str]]:
    """Count the batch's settled tasks against their runs; end the runs with none left."""
    if not runs:
        return []
    ended = [
        str(row[0])
        for row in conn.execute(
            "UPDATE runs SET remaining_tasks = remaining_tasks - v.n"
            " FROM unnest(%s::uuid[], %s::int[]) AS v(id, n) WHERE runs.id = v.id"
            " RETURNING runs.id, runs.remaining_tasks",
            ([r.id for r in runs], [r.settled for r in runs]),
        )
        if row[1] <= 0
    ]
    if not ended:
        return []
    tasks: dict[str, list[tuple[str, str, Any, Any]]] = {run_id: [] for run_id in ended}
    for row in conn.execute(
        "SELECT run_id, task_name, status, output, error FROM task_runs"
        " WHERE run_id = ANY(%s::uuid[])",
        (ended,),
    ):
        tasks[str(row[0])].append((row[1], row[2], row[3], row[4]))
    finals: list[tuple[str, str, Jsonb, Jsonb | None]] = []
    for run_id, rows in tasks.items():
        failed = sorted((name, err) for name, status, _, err in rows if status == TaskStatus.FAILED)
        output = {name: out for name, status, out, _ in rows if status == TaskStatus.SUCCEEDED}
        error: Any = None
        final = RunStatus.SUCCEEDED
        if failed:
            final = RunStatus.FAILED
            error = {
                "message": f"task(s) failed: {', '.join(n for n, _ in failed)}",
                "failed_tasks": [{"task": n, **(e or {})} for n, e in failed],
            }
        finals.append((run_id, final.value, Jsonb(output), Jsonb(error) if error else None))
    conn.cursor().executemany(
        "UPDATE runs SET status = %s, output = %s, error = %s, finished_at = now() WHERE id = %s",
        [(f, o, e, run_id) for run_id, f, o, e in finals],
    )
    # Delivered at commit: wakes the api's long-polling readers of these runs.
    conn.execute(
        "SELECT pg_notify(%s, id) FROM unnest(%s::text[]) AS id", (RUN_FINAL_CHANNEL, ended)
    )
    return [(run_id, final) for run_id, final, _, _ in finals]
