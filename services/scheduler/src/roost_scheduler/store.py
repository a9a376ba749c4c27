"""Every SQL statement the scheduler runs: applying a batch of worker reports in one
transaction.

Each transition is guarded by ``(task_run_id, attempt)`` and the current status, so a
redelivered or duplicated report changes nothing. The common reports (started,
succeeded) are applied set-wise: a batch costs a fixed handful of statements whatever
its size, because on this path the scheduler waits on PostgreSQL round trips more than
it computes. Failures are rare and go one by one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from roost_core import admission, dag, dispatch, events, outbox, tracing
from roost_core.engine import decisions, plan, record
from roost_core.engine.decisions import WORKER_LOST
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.topology import Topology
from roost_core.wire import (
    TaskDefinition,
    TaskEmitted,
    TaskFailed,
    TaskReport,
    TaskStarted,
    TaskSucceeded,
    WorkerHeartbeat,
    WorkflowDefinition,
)

logger = logging.getLogger(__name__)
_tracer = tracing.tracer("roost.scheduler")

Conn = psycopg.Connection[Any]
ACTIVE = [TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]
# The engine's own execution deadline trails the worker's (Dramatiq checks its time
# limits once a second): the worker normally interrupts and reports first.
EXECUTION_GRACE_SECONDS = 5.0


@dataclass
class _Run:
    id: str
    status: str
    input: Any
    workflow: str
    version_id: str
    tenant_id: str
    trace: dict[str, str] | None = None  # the run's trace context, for its task messages
    first_report_at: float | None = None
    settled: int = 0  # tasks this batch moved to a final state
    events: list[events.NewEvent] = field(default_factory=list)  # to append at the end
    released: list[tuple[str, int]] = field(default_factory=list)  # attempts that ended

    def event(
        self,
        type: str,
        task: str | None = None,
        attempt: int | None = None,
        data: Any = None,
        at: float | None = None,
    ) -> None:
        self.events.append(
            events.NewEvent(type, task, attempt, data, time.time() if at is None else at)
        )


@dataclass
class BatchOutcome:
    outbox_rows: list[outbox.OutboxRow]
    finished_runs: list[tuple[str, str]]  # (run id, final status)
    applied: int
    ignored: int
    events: list[events.Event] = field(default_factory=list)  # appended to the log


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
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    reports: list[TaskReport],
    emitted: Sequence[TaskEmitted] = (),
) -> BatchOutcome:
    """Apply ``reports`` and append what tasks ``emitted`` (log lines, progress, stream
    chunks) to the event log, inside the caller's transaction."""
    runs = _lock_runs(conn, sorted({r.run_id for r in (*reports, *emitted)}))
    # A task that says something has started: the first thing it emits starts it, if
    # its delayed `started` report has not.
    first_words = {
        e.task_run_id: TaskStarted(
            run_id=e.run_id,
            task_run_id=e.task_run_id,
            task=e.task,
            attempt=e.attempt,
            worker_id=e.worker_id,
            started_at=e.started_at,
        )
        for e in reversed(emitted)
    }
    live: list[TaskReport] = []
    for report in (*reports, *first_words.values()):
        run = runs.get(report.run_id)
        if run is None or RunStatus(run.status).is_final:
            continue  # unknown or already ended: nothing may change it
        if report.task_run_id not in first_words or first_words[report.task_run_id] is not report:
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

    applied = _apply_started(
        conn, definitions, runs, [r for r in live if isinstance(r, TaskStarted)], ACTIVE
    )
    _apply_started(
        conn,
        definitions,
        runs,
        [
            r
            for r in first_words.values()
            if r.run_id in runs and not RunStatus(runs[r.run_id].status).is_final
        ],
        [TaskStatus.QUEUED.value],
    )
    for item in emitted:
        run = runs.get(item.run_id)
        # A run's stream ends with its final event: what a task says later is dropped.
        if run is not None and not RunStatus(run.status).is_final:
            run.event(f"task.{item.type}", item.task, item.attempt, item.data, item.at)
    messages: list[outbox.OutboxMessage] = []
    applied += _apply_succeeded(
        conn,
        topology,
        definitions,
        runs,
        [r for r in live if isinstance(r, TaskSucceeded)],
        messages,
    )
    for report in live:
        if isinstance(report, TaskFailed) and fail_attempt(
            conn,
            topology,
            definitions,
            runs[report.run_id],
            messages,
            task_run_id=report.task_run_id,
            task=report.task,
            attempt=report.attempt,
            error=report.error.model_dump(),
            worker_id=report.worker_id,
            started_at=report.started_at,
            finished_at=report.finished_at,
            retryable=report.retryable and report.error.type != "ScheduleTimeout",
            timed_out=report.timed_out,
        ):
            applied += 1

    finished = _settle(
        conn, topology, definitions, [r for r in runs.values() if r.settled], messages
    )
    rows, appended = _write(conn, topology, runs, messages)
    return BatchOutcome(rows, finished, applied, len(reports) - applied, appended)


def _write(
    conn: Conn, topology: Topology, runs: dict[str, _Run], messages: list[outbox.OutboxMessage]
) -> tuple[list[outbox.OutboxRow], list[events.Event]]:
    """Append the batch's events, free what its ended attempts held, and write its
    outbox (roost_core.engine.record.write)."""
    if tracing.enabled():
        _trace_decisions(runs)
    written = plan.run(
        conn.cursor(),
        record.write(
            topology,
            [
                events.RunEvents(r.tenant_id, r.id, r.workflow, r.events)
                for r in runs.values()
                if r.events
            ],
            messages,
            # Rate-limited attempts that ended free their units.
            [a for r in runs.values() for a in r.released],
        ),
    )
    return written.outbox_rows, written.appended


def _trace_decisions(runs: dict[str, _Run]) -> None:
    """Spans in each run's trace for what this batch decided about it: a ``schedule``
    span (``complete`` for the batch that ended the run) with the events it appended,
    and a ``queue`` span per attempt that started, from queued to started (times from
    the database; the worker's own span covers the execution)."""
    now = time.time()
    for run in runs.values():
        if not run.events or not run.trace:
            continue
        types = [e.type for e in run.events]
        final = next((t for t in types if t in events.RUN_FINAL_TYPES), None)
        attributes: dict[str, Any] = {
            "roost.run_id": run.id,
            "roost.workflow": run.workflow,
            "roost.events": types,
        }
        if final:
            attributes["roost.run_status"] = final.removeprefix("run.").upper()
        tracing.record_span(
            _tracer,
            f"complete {run.workflow}" if final else f"schedule {run.workflow}",
            run.trace,
            now,
            now,
            attributes,
            error=final if final in (events.RUN_FAILED, events.RUN_CANCELLED) else None,
        )
        for e in run.events:
            if e.type != events.TASK_STARTED or not isinstance(e.data, dict):
                continue
            queued = e.data.get("queued_at")
            if queued is None:
                continue
            tracing.record_span(
                _tracer,
                f"queue {e.task}",
                run.trace,
                queued,
                e.at,
                {
                    "roost.run_id": run.id,
                    "roost.task": e.task or "",
                    "roost.attempt": e.attempt or 0,
                    "roost.queue_wait_seconds": e.data.get("queue_wait", 0.0),
                },
            )


def _lock_runs(conn: Conn, run_ids: list[str]) -> dict[str, _Run]:
    """Lock every run the batch touches, in id order, so two scheduler replicas never
    deadlock and each sees the other's committed work on the same run."""
    runs: dict[str, _Run] = {}
    for row in conn.execute(
        "SELECT id, status, input, workflow_name, workflow_version_id, tenant_id, trace"
        " FROM runs WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
        (run_ids,),
    ):
        runs[str(row[0])] = _Run(
            str(row[0]), row[1], row[2], row[3], str(row[4]), str(row[5]), row[6]
        )
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
        run.event(events.RUN_STARTED, at=run.first_report_at)


def _apply_started(
    conn: Conn,
    definitions: Definitions,
    runs: dict[str, _Run],
    reports: list[TaskStarted],
    statuses: list[str],
) -> int:
    """QUEUED -> RUNNING. A start of the same attempt on another worker (RabbitMQ
    redelivered it after its first worker died) takes the task over, when ``statuses``
    allow RUNNING. A task with an execution timeout gets its engine-side deadline:
    start + timeout + grace."""
    if not reports:
        return 0
    timeouts = [
        definitions.get(conn, runs[r.run_id].version_id).by_name[r.task].execution_timeout_seconds
        for r in reports
    ]
    cur = conn.execute(
        "UPDATE task_runs t SET status = %s, started_at = to_timestamp(v.at), worker_id = v.w,"
        " deadline_at = to_timestamp(v.at + v.timeout + %s)"
        " FROM unnest(%s::uuid[], %s::int[], %s::float8[], %s::text[], %s::float8[])"
        "   AS v(id, a, at, w, timeout)"
        " WHERE t.id = v.id AND t.attempt = v.a AND t.status = ANY(%s)"
        " RETURNING t.run_id, t.task_name, t.attempt, t.worker_id,"
        "   extract(epoch FROM t.started_at), extract(epoch FROM t.queued_at)",
        (
            TaskStatus.RUNNING,
            EXECUTION_GRACE_SECONDS,
            [r.task_run_id for r in reports],
            [r.attempt for r in reports],
            [r.started_at for r in reports],
            [r.worker_id for r in reports],
            timeouts,
            statuses,
        ),
    )
    rows = cur.fetchall()
    for run_id, name, attempt, worker_id, at, queued in rows:
        runs[str(run_id)].event(
            events.TASK_STARTED, name, attempt, _started(worker_id, at, queued), float(at)
        )
    return len(rows)


def _started(worker_id: str | None, started: Any, queued: Any) -> dict[str, Any]:
    """A ``task.started`` event's data: the worker, and how long the attempt waited
    between being queued (ready, or due for its retry) and starting."""
    data: dict[str, Any] = {"worker_id": worker_id}
    if queued is not None and started is not None:
        data["queued_at"] = float(queued)
        data["queue_wait"] = max(0.0, float(started) - float(queued))
    return data


def _apply_succeeded(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
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
    # Keep this statement's WHERE to the guard it needs (id, attempt, status): one more
    # predicate ("dispatch_at IS NULL", redundant since a pending retry already has a
    # new attempt number) made PostgreSQL plan it badly on tables without statistics
    # and cost four times the CPU per run under bulk load.
    done = conn.execute(
        "UPDATE task_runs t SET status = %s, output = v.o::jsonb, worker_id = v.w,"
        " started_at = to_timestamp(v.s), finished_at = to_timestamp(v.f),"
        " deadline_at = NULL, error = NULL"
        " FROM unnest(%s::uuid[], %s::int[], %s::text[], %s::text[], %s::float8[],"
        "   %s::float8[]) AS v(id, a, o, w, s, f)"
        " WHERE t.id = v.id AND t.attempt = v.a AND t.status = ANY(%s)"
        # The sub-select sees the row as it was before this statement: was it started?
        " RETURNING t.run_id, t.task_name, t.output, t.attempt, t.worker_id, t.id,"
        "   extract(epoch FROM t.started_at), extract(epoch FROM t.finished_at),"
        "   (SELECT o.status FROM task_runs o WHERE o.id = t.id),"
        "   extract(epoch FROM t.queued_at)",
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
    for (
        run_id,
        task,
        output,
        attempt,
        worker_id,
        task_run_id,
        started,
        finished,
        was,
        queued,
    ) in done:
        outputs[(str(run_id), task)] = output
        run = runs[str(run_id)]
        run.settled += 1
        if definitions.get(conn, run.version_id).by_name[task].rate_limits:
            run.released.append((str(task_run_id), attempt))
        if was == TaskStatus.QUEUED:  # too quick for a `started` report of its own
            run.event(
                events.TASK_STARTED,
                task,
                attempt,
                _started(worker_id, started, queued),
                float(started),
            )
        run.event(
            events.TASK_SUCCEEDED,
            task,
            attempt,
            {"output": output, "worker_id": worker_id, "duration": float(finished - started)},
            float(finished),
        )

    # Children of the finished tasks: one less pending parent each; at zero, queued.
    children = conn.execute(
        "UPDATE task_runs c SET pending_parents = c.pending_parents - d.n,"
        " status = CASE WHEN c.pending_parents = d.n THEN %s ELSE c.status END,"
        " attempt = CASE WHEN c.pending_parents = d.n THEN c.attempt + 1 ELSE c.attempt END,"
        " queued_at = CASE WHEN c.pending_parents = d.n THEN now() ELSE c.queued_at END"
        " FROM (SELECT k.id, count(*)::int AS n FROM task_runs k"
        "       JOIN unnest(%s::uuid[], %s::text[]) AS f(run_id, task)"
        "         ON k.run_id = f.run_id AND f.task = ANY(k.parents)"
        "       WHERE k.status = %s GROUP BY k.id) AS d"
        " WHERE c.id = d.id AND c.pending_parents >= d.n"
        " RETURNING c.id, c.run_id, c.task_name, c.pending_parents, c.attempt",
        (
            TaskStatus.QUEUED,
            [k[0] for k in outputs],
            [k[1] for k in outputs],
            TaskStatus.PENDING,
        ),
    ).fetchall()
    ready = [(str(row[0]), str(row[1]), row[2], row[4]) for row in children if row[3] == 0]
    if ready:
        _dispatch(conn, topology, definitions, runs, ready, out, known=outputs)
    return len(done)


def _dispatch(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    runs: dict[str, _Run],
    ready: list[tuple[str, str, str, int]],
    out: list[outbox.OutboxMessage],
    known: dict[tuple[str, str], Any] | None = None,
    *,
    event: str = events.TASK_QUEUED,
    admitted: bool = False,
) -> None:
    """Write the task messages of ``ready`` attempts (task run id, run id, task name,
    attempt), already QUEUED in task_runs, with their parents' outputs, and set the
    schedule deadlines of those that have one. ``admitted``: the attempts passed the
    ratelimiter already (a redispatch), so they go straight to their queue."""
    outputs = dict(known or {})
    wanted: set[tuple[str, str]] = set()
    for _, run_id, name, _ in ready:
        task = definitions.get(conn, runs[run_id].version_id).by_name[name]
        wanted.update((run_id, p) for p in task.parents)
    missing = sorted(wanted - outputs.keys())
    if missing:  # parents that finished in an earlier batch
        for run_id, task_name, output in conn.execute(
            "SELECT t.run_id, t.task_name, t.output FROM task_runs t"
            " JOIN unnest(%s::uuid[], %s::text[]) AS m(run_id, task)"
            "   ON t.run_id = m.run_id AND t.task_name = m.task",
            ([m[0] for m in missing], [m[1] for m in missing]),
        ):
            outputs[(str(run_id), task_name)] = output
    deadlines: list[tuple[str, float]] = []
    for task_run_id, run_id, name, attempt in ready:
        run = runs[run_id]
        task = definitions.get(conn, run.version_id).by_name[name]
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
            trace=run.trace,
        )
        out.append(dataclasses.replace(message, admission=None) if admitted else message)
        run.event(event, name, attempt)
        if deadline is not None:
            deadlines.append((task_run_id, deadline))
    if deadlines:
        conn.execute(
            "UPDATE task_runs t SET deadline_at = to_timestamp(v.d)"
            " FROM unnest(%s::uuid[], %s::float8[]) AS v(id, d) WHERE t.id = v.id",
            ([d[0] for d in deadlines], [d[1] for d in deadlines]),
        )


def fail_attempt(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    run: _Run,
    out: list[outbox.OutboxMessage],
    *,
    task_run_id: str,
    task: str,
    attempt: int,
    error: dict[str, Any],
    worker_id: str | None,
    started_at: float | None,
    finished_at: float | None,
    retryable: bool,
    timed_out: bool,
    lost: bool = False,
) -> bool:
    """End a failed (or timed-out) attempt, once, and either schedule the next attempt
    (retries left, and the error allows it) or fail the task for good, cancelling its
    descendants. An attempt ``lost`` with its worker is handed to another worker at once
    without using a retry (decisions.after_failure decides).
    Returns False when the attempt was not the current active one."""
    status = TaskStatus.TIMED_OUT if timed_out else TaskStatus.FAILED
    row = conn.execute(
        "UPDATE task_runs SET status = %s, error = %s, worker_id = coalesce(%s, worker_id),"
        " started_at = coalesce(to_timestamp(%s), started_at),"
        " finished_at = coalesce(to_timestamp(%s), now()), deadline_at = NULL"
        " WHERE id = %s AND attempt = %s AND status = ANY(%s) AND dispatch_at IS NULL"
        " RETURNING queued_at, started_at, finished_at, worker_id,"
        "   (SELECT o.status FROM task_runs o WHERE o.id = task_runs.id)",
        (status, Jsonb(error), worker_id, started_at, finished_at, task_run_id, attempt, ACTIVE),
    ).fetchone()
    if row is None:
        return False
    task_def = definitions.get(conn, run.version_id).by_name[task]
    if task_def.rate_limits:
        run.released.append((task_run_id, attempt))  # this attempt is over: units come back
    if row[4] == TaskStatus.QUEUED and started_at is not None:
        queued = row[0].timestamp() if row[0] is not None else None
        run.event(
            events.TASK_STARTED, task, attempt, _started(worker_id, started_at, queued), started_at
        )
    conn.execute(
        "INSERT INTO task_attempts (task_run_id, attempt, status, worker_id, error, queued_at,"
        " started_at, finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (task_run_id, attempt, status, row[3], Jsonb(error), row[0], row[1], row[2]),
    )
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE a.error->>'type' IS DISTINCT FROM %s),"
        " count(*) FILTER (WHERE a.error->>'type' = %s)"
        " FROM task_attempts a JOIN task_runs t ON t.id = a.task_run_id"
        " WHERE a.task_run_id = %s AND a.attempt > t.retry_base",
        (WORKER_LOST, WORKER_LOST, task_run_id),
    ).fetchone()
    failures, losses = (row[0], row[1]) if row else (1, 0)
    retry = decisions.after_failure(
        task_def, failures=failures, losses=losses, lost=lost, retryable=retryable
    )
    if retry is not None:
        delay = retry.delay
        run.event(
            events.TASK_RETRYING,
            task,
            attempt,
            {"error": error, "next_attempt": attempt + 1, "delay": delay},
        )
        # The next attempt waits out its backoff as a durable timer (dispatch_at): a
        # scheduler restarted meanwhile still sends it on time. The last error stays
        # visible on the task until then.
        conn.execute(
            "UPDATE task_runs SET status = %s, attempt = %s, output = NULL, worker_id = NULL,"
            " started_at = NULL, finished_at = NULL, queued_at = NULL,"
            " dispatch_at = now() + make_interval(secs => %s) WHERE id = %s",
            (TaskStatus.QUEUED, attempt + 1, delay, task_run_id),
        )
        if delay <= 0:
            fire_dispatches(conn, topology, definitions, {run.id: run}, out, [task_run_id])
        return True
    run.settled += 1
    run.event(
        events.TASK_TIMED_OUT if timed_out else events.TASK_FAILED, task, attempt, {"error": error}
    )
    # Descendants of a failed task never start; independent branches go on.
    doomed = dag.descendants(definitions.get(conn, run.version_id), [task])
    if doomed:
        upstream = {"type": "UpstreamFailed", "message": f"not run: upstream task {task!r} failed"}
        cancelled = conn.execute(
            "UPDATE task_runs SET status = %s, error = %s, finished_at = now()"
            " WHERE run_id = %s AND task_name = ANY(%s) AND status = %s RETURNING task_name",
            (TaskStatus.CANCELLED, Jsonb(upstream), run.id, sorted(doomed), TaskStatus.PENDING),
        ).fetchall()
        run.settled += len(cancelled)
        for (name,) in sorted(cancelled):
            run.event(events.TASK_CANCELLED, name, None, {"error": upstream})
    return True


def fire_dispatches(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    runs: dict[str, _Run],
    out: list[outbox.OutboxMessage],
    task_run_ids: list[str] | None = None,
) -> int:
    """Send the retries whose backoff is over (of ``runs``, or just ``task_run_ids``)."""
    if task_run_ids is not None:
        rows = conn.execute(
            "UPDATE task_runs SET dispatch_at = NULL, queued_at = now()"
            " WHERE id = ANY(%s::uuid[]) AND dispatch_at <= now()"
            " RETURNING id, run_id, task_name, attempt",
            (task_run_ids,),
        ).fetchall()
    else:
        rows = conn.execute(
            "UPDATE task_runs SET dispatch_at = NULL, queued_at = now()"
            " WHERE run_id = ANY(%s::uuid[]) AND dispatch_at <= now()"
            " RETURNING id, run_id, task_name, attempt",
            ([r.id for r in runs.values()],),
        ).fetchall()
    ready = [(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]
    if ready:
        _dispatch(conn, topology, definitions, runs, ready, out)
    return len(ready)


def _engine_fail(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    run: _Run,
    out: list[outbox.OutboxMessage],
    row: tuple[Any, Any, str, int],
    error: dict[str, Any],
    *,
    retryable: bool,
    timed_out: bool,
    lost: bool = False,
) -> bool:
    """fail_attempt for an attempt the engine ends itself (no worker report): ``row`` is
    (task run id, run id, task name, attempt)."""
    task_run_id, _, name, attempt = row
    return fail_attempt(
        conn,
        topology,
        definitions,
        run,
        out,
        task_run_id=str(task_run_id),
        task=name,
        attempt=attempt,
        error=error,
        worker_id=None,
        started_at=None,
        finished_at=None,
        retryable=retryable,
        timed_out=timed_out,
        lost=lost,
    )


def _close(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    live: dict[str, _Run],
    out: list[outbox.OutboxMessage],
    applied: int,
) -> BatchOutcome:
    """Settle the runs an engine-side batch touched and write its messages."""
    finished = _settle(conn, topology, definitions, [r for r in live.values() if r.settled], out)
    rows, appended = _write(conn, topology, live, out)
    return BatchOutcome(rows, finished, applied, 0, appended)


def fire_timers(conn: Conn, topology: Topology, definitions: Definitions) -> BatchOutcome:
    """Fire every due timer, inside the caller's transaction: retries whose backoff is
    over are sent; QUEUED attempts past their schedule deadline end TIMED_OUT; RUNNING
    attempts past their execution deadline (the worker did not report in time) time out
    and are retried like any failure. Runs are locked first, as for reports."""
    due = conn.execute(
        "(SELECT run_id FROM task_runs WHERE dispatch_at <= now() LIMIT 500)"
        " UNION (SELECT run_id FROM task_runs WHERE deadline_at <= now() LIMIT 500)"
    ).fetchall()
    if not due:
        return BatchOutcome([], [], 0, 0)
    runs = _lock_runs(conn, sorted({str(r[0]) for r in due}))
    ended = [r.id for r in runs.values() if RunStatus(r.status).is_final]
    if ended:  # a cancelled run keeps no timers
        conn.execute(
            "UPDATE task_runs SET dispatch_at = NULL, deadline_at = NULL"
            " WHERE run_id = ANY(%s::uuid[]) AND (dispatch_at IS NOT NULL"
            "   OR deadline_at IS NOT NULL)",
            (ended,),
        )
    live = {k: r for k, r in runs.items() if not RunStatus(r.status).is_final}
    out: list[outbox.OutboxMessage] = []
    fired = fire_dispatches(conn, topology, definitions, live, out) if live else 0
    expired = (
        conn.execute(
            "SELECT id, run_id, task_name, attempt, status, worker_id FROM task_runs"
            " WHERE run_id = ANY(%s::uuid[]) AND deadline_at <= now() AND status = ANY(%s)"
            " AND dispatch_at IS NULL",
            ([r for r in live], ACTIVE),
        ).fetchall()
        if live
        else []
    )
    for task_run_id, run_id, name, attempt, status, worker_id in expired:
        run = live[str(run_id)]
        task = definitions.get(conn, run.version_id).by_name[name]
        if status == TaskStatus.QUEUED:
            error = {
                "type": "ScheduleTimeout",
                "message": f"task {name!r} was not started by a worker within its "
                f"schedule timeout of {task.schedule_timeout_seconds} s",
            }
            retryable = False
        else:
            error = {
                "type": "ExecutionTimeout",
                "message": f"task {name!r} did not finish within its execution timeout "
                f"of {task.execution_timeout_seconds} s"
                f" (on worker {worker_id})",
            }
            retryable = True
        row = (task_run_id, run_id, name, attempt)
        if _engine_fail(
            conn, topology, definitions, run, out, row, error, retryable=retryable, timed_out=True
        ):
            fired += 1
    return _close(conn, topology, definitions, live, out, fired)


def _settle(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    runs: list[_Run],
    out: list[outbox.OutboxMessage],
) -> list[tuple[str, str]]:
    """Count the batch's settled tasks against their runs; end the runs with none left.
    A run that failed and has an on_failure handler not yet run gets it now instead, and
    ends once the handler has."""
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
    by_id = {r.id: r for r in runs}
    for run_id, rows in tasks.items():
        handler = definitions.get(conn, by_id[run_id].version_id).on_failure
        end = decisions.run_end(
            [decisions.SettledTask(n, TaskStatus(s), o, e) for n, s, o, e in rows],
            handler.name if handler is not None else None,
        )
        if isinstance(end, decisions.StartOnFailure):
            assert handler is not None
            _start_on_failure(conn, topology, by_id[run_id], handler, end.errors, out)
            continue
        final, output, error = end.status, end.output, end.error
        finals.append((run_id, final.value, Jsonb(output), Jsonb(error) if error else None))
        by_id[run_id].status = final.value
        data = {"error": error} if error else {"output": output}
        by_id[run_id].event(events.run_final_type(final), data=data)
        if definitions.get(conn, by_id[run_id].version_id).concurrency is not None:
            by_id[run_id].released.append((run_id, admission.RUN_ATTEMPT))  # its group place
    if not finals:
        return []
    conn.cursor().executemany(
        "UPDATE runs SET status = %s, output = %s, error = %s, finished_at = now() WHERE id = %s",
        [(f, o, e, run_id) for run_id, f, o, e in finals],
    )
    plan.run(conn.cursor(), record.notify_final([f[0] for f in finals]))
    return [(run_id, final) for run_id, final, _, _ in finals]


def _start_on_failure(
    conn: Conn,
    topology: Topology,
    run: _Run,
    handler: TaskDefinition,
    errors: dict[str, Any],
    out: list[outbox.OutboxMessage],
) -> None:
    """Queue the run's on_failure handler, with the errors of the tasks that failed."""
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
    )
    conn.execute(
        "INSERT INTO task_runs (id, run_id, task_name, parents, pending_parents, status,"
        " attempt, queued_at, deadline_at) VALUES (%s, %s, %s, '{}', 0, %s, 1, now(),"
        " to_timestamp(%s))",
        (task_run_id, run.id, handler.name, TaskStatus.QUEUED, deadline),
    )
    conn.execute("UPDATE runs SET remaining_tasks = 1 WHERE id = %s", (run.id,))
    out.append(message)
    run.event(events.TASK_QUEUED, handler.name, 1)


def record_heartbeats(conn: Conn, beats: list[WorkerHeartbeat]) -> None:
    """Remember each worker process's latest heartbeat (one statement per batch): its
    state, slots, attempts running and versions. A heartbeat older (by the worker's own
    clock) than the one already stored changes nothing: with several scheduler replicas
    a late "draining" must not overwrite the "stopped" the worker sent after it."""
    if not beats:
        return
    latest = list({b.worker_id: b for b in sorted(beats, key=lambda b: b.sent_at)}.values())
    conn.execute(
        "INSERT INTO workers (id, name, workflows, slots, running, held, last_heartbeat_at,"
        "   state, version, sdk_version, last_sent_at)"
        " SELECT v.id, v.name, string_to_array(v.workflows, ','), v.slots, v.running,"
        "   string_to_array(v.held, ','), now(), v.state, v.version, v.sdk_version, v.sent_at"
        " FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::int[], %s::text[],"
        "   %s::text[], %s::text[], %s::text[], %s::float8[])"
        "   AS v(id, name, workflows, slots, running, held, state, version, sdk_version,"
        "   sent_at)"
        " ON CONFLICT (id) DO UPDATE SET last_heartbeat_at = now(), running = EXCLUDED.running,"
        "   held = EXCLUDED.held,"
        "   slots = EXCLUDED.slots, workflows = EXCLUDED.workflows, state = EXCLUDED.state,"
        "   version = EXCLUDED.version, sdk_version = EXCLUDED.sdk_version,"
        "   last_sent_at = EXCLUDED.last_sent_at"
        " WHERE workers.last_sent_at IS NULL OR workers.last_sent_at <= EXCLUDED.last_sent_at",
        (
            [b.worker_id for b in latest],
            [b.name for b in latest],
            [",".join(b.workflows) for b in latest],
            [b.slots for b in latest],
            [len(b.running) for b in latest],
            [",".join(b.held) for b in latest],
            [b.state for b in latest],
            [b.version for b in latest],
            [b.sdk_version for b in latest],
            [b.sent_at for b in latest],
        ),
    )


# RUNNING attempts whose worker has been silent (or never heard of) for `timeout` s;
# parameters: status, timeout, timeout.
_SILENT_WORKER = (
    " LEFT JOIN workers w ON w.id = t.worker_id"
    " WHERE t.status = %s AND t.started_at < now() - make_interval(secs => %s)"
    " AND (w.last_heartbeat_at IS NULL OR w.last_heartbeat_at < now()"
    "      - make_interval(secs => %s))"
)


def reclaim_lost_attempts(
    conn: Conn, topology: Topology, definitions: Definitions, timeout: float
) -> BatchOutcome:
    """RUNNING attempts whose worker has not been heard from for ``timeout`` seconds
    (killed, frozen, cut off) end with a WorkerLost error and go to another worker at
    once. If the lost worker comes back and reports, its result no longer matches the
    current attempt and is discarded."""
    candidates = conn.execute(
        "SELECT t.run_id FROM task_runs t" + _SILENT_WORKER + " LIMIT 500",
        (TaskStatus.RUNNING, timeout, timeout),
    ).fetchall()
    if not candidates:
        return BatchOutcome([], [], 0, 0)
    runs = _lock_runs(conn, sorted({str(r[0]) for r in candidates}))
    live = {k: r for k, r in runs.items() if not RunStatus(r.status).is_final}
    if not live:
        return BatchOutcome([], [], 0, 0)
    # Re-read under the run locks: a report may have landed meanwhile.
    lost = conn.execute(
        "SELECT t.id, t.run_id, t.task_name, t.attempt, t.worker_id FROM task_runs t"
        + _SILENT_WORKER
        + " AND t.run_id = ANY(%s::uuid[])",
        (TaskStatus.RUNNING, timeout, timeout, list(live)),
    ).fetchall()
    out: list[outbox.OutboxMessage] = []
    reclaimed = 0
    for task_run_id, run_id, name, attempt, worker_id in lost:
        error = {
            "type": WORKER_LOST,
            "message": f"worker {worker_id} stopped sending heartbeats for {timeout} s"
            " while running this attempt; it was handed to another worker",
        }
        row = (task_run_id, run_id, name, attempt)
        if _engine_fail(
            conn,
            topology,
            definitions,
            live[str(run_id)],
            out,
            row,
            error,
            retryable=True,
            timed_out=False,
            lost=True,
        ):
            reclaimed += 1
    return _close(conn, topology, definitions, live, out, reclaimed)
