"""Batches applied the way the scheduler applies them, in a pipelined transaction.

Reports about the same attempt (roost_core.engine.reports.apply_reports, whose success
statement goes out with the lock of its runs): the run's event log says what happened in
the order it happened, whatever arrived together, and a success counts once. A user
reads this log (``roost runs events``, the dashboard, the SSE stream): a task's
``task.started`` comes before anything it said and before its ``task.succeeded``.

A batch of nothing but accepted triggers (roost_core.engine.accepted): its runs, their
events and their first tasks' messages, in two round trips."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pgtrace
import psycopg
import pytest

from harness import Stack
from roost_api import store as api
from roost_core import pipelined
from roost_core.engine.accepted import Created, create_accepted
from roost_core.engine.reports import apply_reports
from roost_core.engine.state import Definitions
from roost_core.topology import Topology
from roost_core.wire import (
    RunAccepted,
    TaskEmitted,
    TaskMessage,
    TaskReport,
    TaskStarted,
    TaskSucceeded,
    WorkflowDefinition,
)


class Line:
    """A two-task line (first -> second), created by the api's own transition."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        (tenant,) = stack.sql("SELECT id::text FROM tenants ORDER BY created_at LIMIT 1")[0]
        self.tenant = str(tenant)
        self.topology = Topology(stack.env["ROOST_NAMESPACE"])
        self.definitions = Definitions()
        definition = WorkflowDefinition.model_validate(
            {
                "name": f"batch-{uuid.uuid4().hex[:10]}",
                "tasks": [{"name": "first"}, {"name": "second", "parents": ["first"]}],
            }
        )
        self.run_id, [self.first] = asyncio.run(self._create(definition))

    async def _create(self, definition: WorkflowDefinition) -> tuple[str, list[TaskMessage]]:
        conn = await psycopg.AsyncConnection.connect(self.stack.database_url)
        async with conn, conn.transaction():
            wv, _ = await api.register_workflow(conn, self.tenant, definition)
            made = await api.create_runs(conn, self.topology, self.tenant, wv, [api.RunRequest({})])
        return made.runs[0].run_id, _messages(made.outbox_rows)

    def apply(
        self, reports: list[TaskReport], emitted: list[TaskEmitted] | None = None
    ) -> list[TaskMessage]:
        """Apply one batch as the scheduler does; the task messages it wrote."""
        with psycopg.connect(self.stack.database_url, autocommit=True) as conn:
            with pipelined.transaction(conn):
                outcome = apply_reports(
                    conn, self.topology, self.definitions, reports, emitted or [], deferred=True
                )
            outcome.complete()
        return _messages(outcome.outbox_rows)

    def events(self) -> list[tuple[str, str | None]]:
        rows = self.stack.sql(
            "SELECT type, task FROM events WHERE run_id = %s ORDER BY id", self.run_id
        )
        return [(str(t), None if task is None else str(task)) for t, task in rows]

    def _of_first(self, at: float) -> dict[str, Any]:
        """What every report about the first task's attempt says."""
        m = self.first
        return {
            "run_id": m.run_id,
            "task_run_id": m.task_run_id,
            "task": m.task,
            "attempt": m.attempt,
            "worker_id": "batch@test:1",
            "started_at": at,
        }

    def started(self, at: float) -> TaskStarted:
        return TaskStarted(**self._of_first(at))

    def succeeded(self, at: float) -> TaskSucceeded:
        return TaskSucceeded(**self._of_first(at), finished_at=at + 0.01, output={"n": 1})

    def said(self, at: float, message: str) -> TaskEmitted:
        return TaskEmitted(
            **self._of_first(at), at=at + 0.001, type="log", data={"message": message}
        )


def _messages(rows: list[Any]) -> list[TaskMessage]:
    return [
        TaskMessage.model_validate(json.loads(r.message.body)["args"][0])
        for r in rows
        if r.message.exchange == ""
    ]


@pytest.fixture
def line(stack: Stack) -> Line:
    return Line(stack)


def test_a_start_and_a_success_in_one_batch_log_the_start_once_and_first(line: Line) -> None:
    now = time.time()
    [child] = line.apply([line.started(now), line.succeeded(now)])

    assert child.task == "second"
    first = [t for t, task in line.events() if task == "first"]
    assert first == ["task.queued", "task.started", "task.succeeded"], line.events()
    assert ("run.started", None) in line.events()


def test_what_a_task_said_comes_after_its_start_and_before_its_success(line: Line) -> None:
    now = time.time()
    [child] = line.apply([line.succeeded(now)], [line.said(now, "hello")])

    assert child.task == "second"
    first = [t for t, task in line.events() if task == "first"]
    assert first == ["task.queued", "task.started", "task.log", "task.succeeded"], line.events()


def test_a_success_reported_twice_counts_once(line: Line) -> None:
    now = time.time()
    [child] = line.apply([line.succeeded(now)])
    assert line.apply([line.succeeded(now)]) == []  # a redelivery: nothing new
    assert line.apply([line.started(now), line.succeeded(now)]) == []

    assert child.task == "second"
    first = [t for t, task in line.events() if task == "first"]
    assert first == ["task.queued", "task.started", "task.succeeded"], line.events()
    [(remaining,)] = line.stack.sql("SELECT remaining_tasks FROM runs WHERE id = %s", line.run_id)
    assert remaining == 1  # "second" left


def _round_trips(conn: psycopg.Connection[Any], work: Any) -> int:
    """How many times ``work`` waited for PostgreSQL: the Flush (a read) and Sync (the
    end of the pipeline) messages it sent up to its Sync."""
    waits = 0
    for message in pgtrace.sent(conn, work):
        if message in ("Flush", "Sync"):
            waits += 1
            if message == "Sync":
                break  # the pipeline's end: what follows reads its answer
    return waits


@pytest.mark.parametrize("deferred", [True, False])
def test_a_batch_of_nothing_but_triggers_creates_its_runs_in_two_round_trips(
    line: Line, deferred: bool
) -> None:
    [(workflow_id, version_id)] = line.stack.sql(
        "SELECT workflow_id::text, workflow_version_id::text FROM runs WHERE id = %s",
        line.run_id,
    )
    accepted = [
        RunAccepted(
            tenant_id=line.tenant,
            workflow_id=str(workflow_id),
            version_id=str(version_id),
            run_id=str(uuid.uuid4()),
            input={"n": n},
        )
        for n in range(3)
    ]
    with psycopg.connect(line.stack.database_url, autocommit=True) as conn:
        line.definitions.get(conn, str(version_id))  # the scheduler's are read once

        def create() -> None:
            nonlocal created
            with pipelined.transaction(conn):
                created = create_accepted(
                    conn, line.topology, line.definitions, accepted, deferred=deferred
                )
            created.complete()

        created = Created()
        # The runs' insert (its rows say which were new) and the COMMIT, which answers
        # the event log and the outbox too when deferred.
        assert _round_trips(conn, create) == (2 if deferred else 3)

    assert sorted(m.task for m in _messages(created.outbox_rows)) == ["first"] * 3
    for item in accepted:
        [(status, n)] = line.stack.sql(
            "SELECT status, input->>'n' FROM runs WHERE id = %s", item.run_id
        )
        assert status == "QUEUED" and n == str(item.input["n"])
        events = line.stack.sql(
            "SELECT type FROM events WHERE run_id = %s ORDER BY id", item.run_id
        )
        assert [e for (e,) in events] == ["run.queued", "task.queued"]
