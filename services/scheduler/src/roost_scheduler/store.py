"""Every SQL statement the scheduler runs: applying a batch of worker reports in one
transaction. Each transition is guarded by ``(task_run_id, attempt)`` and the current
status, so a redelivered or duplicated report changes nothing."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
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
ACTIVE = (TaskStatus.QUEUED, TaskStatus.RUNNING)


@dataclass
class _Run:
    id: str
    status: str
    input: Any
    workflow: str
    version_id: str
    settled: int = 0  # tasks this batch moved to a final state
    failed: list[str] = field(default_factory=list)


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
    # Lock every run the batch touches, in id order, so two scheduler replicas never
    # deadlock and each sees the other's committed work on the same run.
    run_ids = sorted({r.run_id for r in reports})
    runs: dict[str, _Run] = {}
    for row in conn.execute(
        "SELECT id, status, input, workflow_name, workflow_version_id FROM runs"
        " WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
        (run_ids,),
    ):
        runs[str(row[0])] = _Run(str(row[0]), row[1], row[2], row[3], str(row[4]))

    rows: list[outbox.OutboxMessage] = []
    applied = ignored = 0
    for report in reports:
        run = runs.get(report.run_id)
        if run is None or RunStatus(run.status).is_final:
            ignored += 1
            continue
        if run.status == RunStatus.QUEUED:
            conn.execute(
                "UPDATE runs SET status = %s, started_at = to_timestamp(%s) WHERE id = %s",
                (RunStatus.RUNNING, report.started_at, run.id),
            )
            run.status = RunStatus.RUNNING
        if isinstance(report, TaskStarted):
            ok = _start(conn, report)
        elif isinstance(report, TaskSucceeded):
            ok = _succeed(conn, topology, run, report, rows)
        else:
            ok = _fail(conn, definitions, run, report)
        if ok:
            applied += 1
        else:
            ignored += 1

    finished: list[tuple[str, str]] = []
    for run in runs.values():
        if run.settled:
            final = _settle(conn, run)
            if final:
                finished.append((run.id, final))
    outbox_rows = outbox.insert(conn.cursor(), rows)
    return BatchOutcome(outbox_rows, finished, applied, ignored)


def _start(conn: Conn, r: TaskStarted) -> bool:
    cur = conn.execute(
        "UPDATE task_runs SET status = %s, started_at = to_timestamp(%s), worker_id = %s"
        " WHERE id = %s AND attempt = %s AND status = %s",
        (
            TaskStatus.RUNNING,
            r.started_at,
            r.worker_id,
            r.task_run_id,
            r.attempt,
            TaskStatus.QUEUED,
        ),
    )
    return cur.rowcount == 1


def _finish_attempt(
    conn: Conn, r: TaskSucceeded | TaskFailed, status: TaskStatus, output: Any, error: Any
) -> bool:
    """Record the attempt's end, once: only from QUEUED or RUNNING, only for the
    current attempt."""
    row = conn.execute(
        "UPDATE task_runs SET status = %s, output = %s, error = %s, worker_id = %s,"
        " started_at = to_timestamp(%s), finished_at = to_timestamp(%s)"
        " WHERE id = %s AND attempt = %s AND status = ANY(%s) RETURNING queued_at",
        (
            status,
            Jsonb(output) if output is not None else None,
            Jsonb(error) if error is not None else None,
            r.worker_id,
            r.started_at,
            r.finished_at,
            r.task_run_id,
            r.attempt,
            list(ACTIVE),
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
            status,
            r.worker_id,
            Jsonb(error) if error is not None else None,
            row[0],
            r.started_at,
            r.finished_at,
        ),
    )
    return True


def _succeed(
    conn: Conn, topology: Topology, run: _Run, r: TaskSucceeded, out: list[outbox.OutboxMessage]
) -> bool:
    if not _finish_attempt(conn, r, TaskStatus.SUCCEEDED, r.output, None):
        return False
    run.settled += 1
    # Children whose last pending parent this was become ready now.
    ready = conn.execute(
        "UPDATE task_runs SET pending_parents = pending_parents - 1,"
        " status = CASE WHEN pending_parents = 1 THEN %s ELSE status END,"
        " attempt = CASE WHEN pending_parents = 1 THEN 1 ELSE attempt END,"
        " queued_at = CASE WHEN pending_parents = 1 THEN now() ELSE queued_at END"
        " WHERE run_id = %s AND %s = ANY(parents) AND status = %s"
        " RETURNING id, task_name, pending_parents, parents",
        (TaskStatus.QUEUED, run.id, r.task, TaskStatus.PENDING),
    ).fetchall()
    ready = [row for row in ready if row[2] == 0]
    if not ready:
        return True
    parent_names = sorted({p for row in ready for p in row[3]})
    outputs = {r.task: r.output}
    others = [p for p in parent_names if p != r.task]
    if others:
        for name, output in conn.execute(
            "SELECT task_name, output FROM task_runs WHERE run_id = %s AND task_name = ANY(%s)",
            (run.id, others),
        ):
            outputs[name] = output
    for task_run_id, name, _, parents in ready:
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
                    parent_outputs={p: outputs.get(p) for p in parents},
                ),
            )
        )
    return True


def _fail(conn: Conn, definitions: Definitions, run: _Run, r: TaskFailed) -> bool:
    error = r.error.model_dump()
    if not _finish_attempt(conn, r, TaskStatus.FAILED, None, error):
        return False
    run.settled += 1
    run.failed.append(r.task)
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


def _settle(conn: Conn, run: _Run) -> str | None:
    """Count the batch's settled tasks against the run; end the run when none remain."""
    row = conn.execute(
        "UPDATE runs SET remaining_tasks = remaining_tasks - %s WHERE id = %s"
        " RETURNING remaining_tasks",
        (run.settled, run.id),
    ).fetchone()
    assert row is not None
    if row[0] > 0:
        return None
    tasks = conn.execute(
        "SELECT task_name, status, output, error FROM task_runs WHERE run_id = %s", (run.id,)
    ).fetchall()
    failed = [(name, err) for name, status, _, err in tasks if status == TaskStatus.FAILED]
    output = {name: out for name, status, out, _ in tasks if status == TaskStatus.SUCCEEDED}
    if failed:
        final = RunStatus.FAILED
        names = ", ".join(sorted(n for n, _ in failed))
        error: Any = {
            "message": f"task(s) failed: {names}",
            "failed_tasks": [
                {"task": n, **(e or {})} for n, e in sorted(failed, key=lambda f: f[0])
            ],
        }
    else:
        final, error = RunStatus.SUCCEEDED, None
    conn.execute(
        "UPDATE runs SET status = %s, output = %s, error = %s, finished_at = now() WHERE id = %s",
        (final, Jsonb(output), Jsonb(error) if error else None, run.id),
    )
    conn.execute("SELECT pg_notify(%s, %s)", (RUN_FINAL_CHANNEL, run.id))
    return str(final)
