"""The span store against the real PostgreSQL: each span once, bounded per run, only for
runs that exist; and retention deletes old runs with their tasks, events and spans."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from harness import Stack
from roost_core.span_store import StoredCounts, store
from roost_core.spans import SpanEventRecord, SpanRecord


def _run(stack: Stack, finished_days_ago: float | None, status: str = "SUCCEEDED") -> str:
    """A run (with one task run and one event) inserted straight into the database."""
    tenant, workflow, version, run = (str(uuid.uuid4()) for _ in range(4))
    with psycopg.connect(stack.database_url, autocommit=True) as conn, conn.transaction():
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, %s)", (tenant, f"t-{tenant}"))
        conn.execute(
            "INSERT INTO workflows (id, tenant_id, name) VALUES (%s, %s, 'spans-it')",
            (workflow, tenant),
        )
        conn.execute(
            "INSERT INTO workflow_versions (id, workflow_id, version, definition)"
            " VALUES (%s, %s, 'v1', '{}')",
            (version, workflow),
        )
        conn.execute(
            "INSERT INTO runs (id, tenant_id, workflow_id, workflow_version_id, workflow_name,"
            " status, input, remaining_tasks, finished_at)"
            " VALUES (%s, %s, %s, %s, 'spans-it', %s, '{}', 0,"
            "   CASE WHEN %s::float8 IS NULL THEN NULL"
            "   ELSE now() - make_interval(secs => %s::float8 * 86400) END)",
            (run, tenant, workflow, version, status, finished_days_ago, finished_days_ago),
        )
        conn.execute(
            "INSERT INTO task_runs (id, run_id, task_name, status, parents, pending_parents,"
            " attempt) VALUES (%s, %s, 'a', 'SUCCEEDED', '{}', 0, 1)",
            (str(uuid.uuid4()), run),
        )
        conn.execute(
            "INSERT INTO events (tenant_id, run_id, workflow, seq, type)"
            " VALUES (%s, %s, 'spans-it', 1, 'run.queued')",
            (tenant, run),
        )
    return run


def _span(run_id: str, n: int, parent: int | None = None) -> SpanRecord:
    return SpanRecord(
        run_id=run_id,
        trace_id="ab" * 16,
        span_id=f"{n:016x}",
        parent_span_id=f"{parent:016x}" if parent is not None else None,
        name=f"span {n}",
        service="roost-test",
        kind="internal",
        start=1_700_000_000.0 + n,
        end=1_700_000_000.5 + n,
        status="error" if n == 2 else "ok",
        attributes={"roost.run_id": run_id, "n": n, "tags": ["a", "b"]},
        events=[SpanEventRecord(name="exception", at=1_700_000_000.1, attributes={"x": 1})]
        if n == 2
        else [],
    )


def _count(stack: Stack, table: str, run_id: str) -> int:
    (row,) = stack.sql(f"SELECT count(*) FROM {table} WHERE run_id = %s", run_id)
    return int(row[0])  # type: ignore[call-overload]


def test_a_writer_that_remembers_counts_still_keeps_each_run_under_its_cap(stack: Stack) -> None:
    # StoredCounts spares the count query for runs far from their cap; near it, the
    # run is counted again, so the cap holds batch after batch, redeliveries included.
    run = _run(stack, finished_days_ago=None, status="RUNNING")
    known = StoredCounts()
    stored: list[str] = []
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        for first in range(1, 40, 3):
            batch = [_span(run, n) for n in range(first, first + 3)]
            with conn.transaction():
                stored += [s["span_id"] for s in store(conn, batch, cap=20, known=known)]
            with conn.transaction():
                assert store(conn, batch, cap=20, known=known) == []  # redelivered
    assert len(stored) == len(set(stored)) == 20
    assert _count(stack, "spans", run) == 20
    assert known.get(run) == 20


def test_spans_are_stored_once_bounded_per_run_and_only_for_existing_runs(stack: Stack) -> None:
    run = _run(stack, finished_days_ago=None, status="RUNNING")
    batch = [_span(run, n, parent=1 if n > 1 else None) for n in range(1, 9)]
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        with conn.transaction():
            first = store(conn, batch[:3], cap=5)
        assert [s["span_id"] for s in first] == [s.span_id for s in batch[:3]]
        with conn.transaction():
            # A redelivered batch adds nothing; the rest fills the run up to its cap.
            again = store(conn, batch, cap=5)
        assert [s["span_id"] for s in again] == [s.span_id for s in batch[3:5]]
        with conn.transaction():
            unknown = store(
                conn,
                [_span(str(uuid.uuid4()), 1), _span("not-a-run-id", 2)],
                cap=5,
            )
        assert unknown == []
    assert _count(stack, "spans", run) == 5
    (row,) = stack.sql(
        "SELECT parent_span_id, status, attributes, events, ended_at - started_at"
        " FROM spans WHERE run_id = %s AND span_id = %s",
        run,
        f"{2:016x}",
    )
    assert row[0] == f"{1:016x}" and row[1] == "error"
    assert row[2] == {"roost.run_id": run, "n": 2, "tags": ["a", "b"]}
    assert row[3] == [{"name": "exception", "at": 1_700_000_000.1, "attributes": {"x": 1}}]
    assert row[4].total_seconds() == pytest.approx(0.5)  # type: ignore[union-attr]


def test_retention_deletes_runs_that_ended_long_ago_with_their_tasks_events_and_spans(
    stack: Stack,
) -> None:
    old = _run(stack, finished_days_ago=3)
    recent = _run(stack, finished_days_ago=0.5)
    unfinished = _run(stack, finished_days_ago=None, status="RUNNING")
    with psycopg.connect(stack.database_url, autocommit=True) as conn, conn.transaction():
        for run in (old, recent, unfinished):
            store(conn, [_span(run, 1), _span(run, 2, parent=1)], cap=100)
    assert _count(stack, "spans", old) == 2
    # The old run was started by a scheduled run and by a cron fire; a scheduled run was
    # cancelled long ago, another is still to come.
    ((tenant, workflow),) = stack.sql("SELECT tenant_id, workflow_id FROM runs WHERE id = %s", old)
    fired, cancelled, pending, cron = (str(uuid.uuid4()) for _ in range(4))
    stack.sql(
        "INSERT INTO scheduled_runs (id, tenant_id, workflow_id, trigger_at, input, status,"
        " run_id) VALUES (%s, %s, %s, now() - interval '3 days', '{}', 'FIRED', %s),"
        " (%s, %s, %s, now() - interval '3 days', '{}', 'CANCELLED', NULL),"
        " (%s, %s, %s, now() - interval '3 days', '{}', 'SCHEDULED', NULL) RETURNING 1",
        *(fired, tenant, workflow, old, cancelled, tenant, workflow, pending, tenant, workflow),
    )
    stack.sql(
        "INSERT INTO crons (id, tenant_id, workflow_id, name, expression, timezone, input,"
        " catch_up, declared, paused, next_fire_at) VALUES (%s, %s, %s, 'c', '0 3 * * *',"
        " 'UTC', '{}', 'latest', false, true, now() + interval '1 day') RETURNING 1",
        *(cron, tenant, workflow),
    )
    stack.sql(
        "INSERT INTO cron_fires (cron_id, fire_at, run_id) VALUES (%s, now(), %s) RETURNING 1",
        cron,
        old,
    )
    scheduler = stack.spawn(
        "scheduler-retention",
        "scheduler",
        extra_env={
            "ROOST_RUN_RETENTION_DAYS": "1",
            "ROOST_RETENTION_INTERVAL_SECONDS": "0.3",
            "ROOST_SCHEDULER_METRICS_PORT": "0",
        },
    )
    try:
        deadline = time.monotonic() + 20
        while stack.sql("SELECT 1 FROM runs WHERE id = %s", old):
            assert time.monotonic() < deadline, scheduler.tail()
            time.sleep(0.2)
    finally:
        scheduler.stop()
    for table in ("task_runs", "events", "spans", "cron_fires", "scheduled_runs"):
        assert _count(stack, table, old) == 0, table
    left = stack.sql("SELECT id FROM scheduled_runs WHERE workflow_id = %s", workflow)
    assert [str(r[0]) for r in left] == [pending]  # the cancelled one went too
    assert stack.sql("SELECT 1 FROM crons WHERE id = %s", cron)  # the cron stays
    # A run that ended within the retention, and one that has not ended, stay whole.
    for run in (recent, unfinished):
        assert stack.sql("SELECT 1 FROM runs WHERE id = %s", run)
        assert _count(stack, "spans", run) == 2
        assert _count(stack, "events", run) == 1
        assert _count(stack, "task_runs", run) == 1
    assert "expired runs deleted" in scheduler.log.read_text()
