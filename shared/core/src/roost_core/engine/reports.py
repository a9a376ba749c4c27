"""Applying a batch of worker reports in one transaction.

Each transition is guarded by ``(task_run_id, attempt)`` and the current status, so a
redelivered or duplicated report changes nothing. The common reports (started,
succeeded) are applied set-wise: a batch costs a fixed handful of statements whatever
its size, because on this path the scheduler waits on PostgreSQL round trips more than
it computes. Failures are rare and go one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from roost_core import events, fastjson, outbox
from roost_core.engine import placing
from roost_core.engine.batch import write_batch_deferred
from roost_core.engine.failures import engine_fail, fail_attempt
from roost_core.engine.ready import dispatch_ready
from roost_core.engine.reports_started import apply_deadlines, apply_started, started_data
from roost_core.engine.settle import settle
from roost_core.engine.state import (
    ACTIVE,
    BatchOutcome,
    Conn,
    Definitions,
    RunState,
    locked_runs,
    mark_runs_running,
    send_lock_runs,
)
from roost_core.engine.waits import suspend_attempt
from roost_core.queries import SQL
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.topology import Topology
from roost_core.wire import (
    TaskCancelRequest,
    TaskEmitted,
    TaskFailed,
    TaskReport,
    TaskStarted,
    TaskSucceeded,
    TaskWaiting,
)

# The hot path's statements (see their comments in sql/queries/reports.sql).
_SUCCEED_AND_RELEASE = SQL.succeed_and_release
LIVE_RUNS = [RunStatus.QUEUED.value, RunStatus.RUNNING.value]  # not ended: may change


def apply_reports(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    reports: list[TaskReport],
    emitted: Sequence[TaskEmitted] = (),
    cancels: Sequence[TaskCancelRequest] = (),
    *,
    deferred: bool = False,
) -> BatchOutcome:
    """Apply ``reports`` and append what tasks ``emitted`` (log lines, progress, stream
    chunks) to the event log, and end the attempts the api asked to cancel, inside the
    caller's transaction. ``deferred``: the batch's last statement (the event log and the
    outbox) is only sent, and the outcome's outbox rows and events are read by its
    ``complete()``, to be called after COMMIT: on a pipelined connection the statement
    and the COMMIT then cost one round trip, not two (issue #17)."""
    successes = [r for r in reports if isinstance(r, TaskSucceeded)]
    locking = send_lock_runs(conn, sorted({r.run_id for r in (*reports, *emitted, *cancels)}))
    # The results go out with the lock, in its round trip (a hand-off waits for one
    # round trip fewer): the statement itself keeps to live runs, which the rows of the
    # lock would otherwise tell. Nothing below it changes what it does: a `started`
    # report of the same attempt finds it ended and changes nothing, and the success
    # writes the `task.started` event itself (from ``was``), before its own. Not with
    # what tasks emitted: a first log line starts its task (below), and its
    # `task.started` event must come before the line's, so the results wait for it.
    succeeding = _send_succeeded(conn, successes) if not emitted else None
    runs = locked_runs(locking)
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
    mark_runs_running(
        conn,
        [
            r
            for r in runs.values()
            if r.status == RunStatus.QUEUED and r.first_report_at is not None
        ],
    )

    # A sticky run whose first task was not placed (its run waited for a concurrency
    # place) sticks to the worker that reports it.
    placing.stick_where_reported(conn, definitions, runs, live)
    applied = apply_started(
        conn, definitions, runs, [r for r in live if isinstance(r, TaskStarted)], ACTIVE
    )
    apply_started(
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
    refreshed: list[TaskEmitted] = []
    for item in emitted:
        run = runs.get(item.run_id)
        # A run's stream ends with its final event: what a task says later is dropped.
        if run is not None and not RunStatus(run.status).is_final:
            run.event(f"task.{item.type}", item.task, item.attempt, item.data, item.at)
            if item.type == "deadline":
                refreshed.append(item)
    apply_deadlines(conn, refreshed)
    messages: list[outbox.OutboxMessage] = []
    if emitted:
        succeeding = _send_succeeded(conn, successes)
    applied += _apply_succeeded(conn, topology, definitions, runs, succeeding, messages)
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
            cancelled=report.cancelled,
        ):
            applied += 1
    for report in live:
        if isinstance(report, TaskWaiting) and suspend_attempt(
            conn, definitions, runs[report.run_id], report
        ):
            applied += 1
    for cancel in cancels:
        run = runs.get(cancel.run_id)
        # An attempt that ended meanwhile (it finished first) is not the active one: the
        # guard in fail_attempt leaves it be.
        if run is not None and not RunStatus(run.status).is_final:
            row = (cancel.task_run_id, cancel.run_id, cancel.task, cancel.attempt)
            error = {"type": "Cancelled", "message": cancel.reason}
            if engine_fail(
                conn,
                topology,
                definitions,
                run,
                messages,
                row,
                error,
                retryable=False,
                timed_out=False,
                cancelled=True,
            ):
                applied += 1

    finished = settle(conn, topology, definitions, list(runs.values()), messages)
    written = write_batch_deferred(conn, topology, runs, messages)
    outcome = BatchOutcome([], finished, applied, len(reports) + len(cancels) - applied)
    outcome.rest = lambda: (lambda w: (w.outbox_rows, w.appended))(written())
    return outcome if deferred else outcome.complete()


def _send_succeeded(conn: Conn, reports: list[TaskSucceeded]) -> psycopg.Cursor[Any] | None:
    """Send the statement that records ``reports`` (each only if still its task's
    current active attempt, of a run not ended) and releases their children; its rows
    are read by _apply_succeeded."""
    if not reports:
        return None
    return conn.execute(
        _SUCCEED_AND_RELEASE,
        {
            "succeeded": TaskStatus.SUCCEEDED,
            "task_run_ids": [r.task_run_id for r in reports],
            "attempts": [r.attempt for r in reports],
            "outputs": [fastjson.dumps(r.output) for r in reports],
            "worker_ids": [r.worker_id for r in reports],
            "started_at": [r.started_at for r in reports],
            "finished_at": [r.finished_at for r in reports],
            "statuses": ACTIVE,
            "live_runs": LIVE_RUNS,
            "queued": TaskStatus.QUEUED,
            "pending": TaskStatus.PENDING,
        },
    )


def _apply_succeeded(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    runs: dict[str, RunState],
    succeeding: psycopg.Cursor[Any] | None,
    out: list[outbox.OutboxMessage],
) -> int:
    """Record results, make ready the children whose last parent this was, and write
    their task messages. A task's succeeded attempt is recorded by its task_runs row
    itself (the api lists it as the current attempt): only attempts that went wrong get
    a task_attempts row."""
    if succeeding is None:
        return 0
    rows = succeeding.fetchall()
    done = [row[1:11] for row in rows if row[0] == 0]
    if not done:
        return 0
    for row in rows:
        if row[0] == 2:  # counted against its run already: what the run has left
            runs[str(row[1])].remaining = row[11]
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
        if definitions.get(conn, run.version_id).by_name[task].admitted:
            run.released.append((str(task_run_id), attempt))
        if was == TaskStatus.QUEUED:  # too quick for a `started` report of its own
            run.event(
                events.TASK_STARTED,
                task,
                attempt,
                started_data(worker_id, started, queued),
                float(started),
            )
        run.event(
            events.TASK_SUCCEEDED,
            task,
            attempt,
            {"output": output, "worker_id": worker_id, "duration": float(finished - started)},
            float(finished),
        )

    # Released children at zero pending parents: (id, run, task, attempt).
    ready = [
        (str(row[6]), str(row[1]), row[2], row[4]) for row in rows if row[0] == 1 and row[11] == 0
    ]
    if ready:
        dispatch_ready(conn, topology, definitions, runs, ready, out, known=outputs)
    return len(done)
