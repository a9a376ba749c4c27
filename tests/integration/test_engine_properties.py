"""The engine's state machine on random DAGs (hypothesis), on the real database: runs are
created and cancelled by the api's transitions, and worker reports (successes, failures
with and without retries left, non-retryable failures, duplicates of reports already
applied) are applied by the scheduler's, exactly as the services call them, with the
task messages taken from the outbox rows each transition writes.

Whatever the DAG and the outcomes: every run ends in exactly one final state with every
task final; no task is ever dispatched before all its parents succeeded (so never a
descendant of a failed task); every attempt ends at most once; and the run's status is
the one its tasks' fates imply."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness import Stack
from roost_api import store as api
from roost_core.engine.reports import apply_reports
from roost_core.engine.state import Definitions
from roost_core.events import RUN_FINAL_TYPES
from roost_core.outbox import OutboxRow
from roost_core.topology import Topology
from roost_core.wire import (
    TaskError,
    TaskFailed,
    TaskMessage,
    TaskSucceeded,
    WorkflowDefinition,
)

MAX_STEPS = 80


@st.composite
def workflows(draw: st.DrawFn) -> WorkflowDefinition:
    """A random DAG of 1 to 6 tasks (parents drawn among earlier tasks), each with 0 to 2
    retries and no backoff, and maybe an on_failure handler."""
    n = draw(st.integers(1, 6))
    tasks = []
    for i in range(n):
        parents = draw(st.lists(st.sampled_from(range(i)), unique=True, max_size=3)) if i else []
        tasks.append(
            {
                "name": f"t{i}",
                "parents": [f"t{p}" for p in sorted(parents)],
                "retries": draw(st.integers(0, 2)),
                "backoff_initial_seconds": 0,
            }
        )
    definition: dict[str, Any] = {"name": f"prop-{uuid.uuid4().hex[:12]}", "tasks": tasks}
    if draw(st.booleans()):
        definition["on_failure"] = {"name": "cleanup", "parents": [], "retries": 0}
    return WorkflowDefinition.model_validate(definition)


@dataclass
class World:
    """What the test saw: every task message dispatched, and every report applied."""

    stack: Stack
    tenant_id: str
    topology: Topology
    definitions: Definitions = field(default_factory=Definitions)
    queued: list[TaskMessage] = field(default_factory=list)
    dispatched: list[TaskMessage] = field(default_factory=list)
    applied: list[TaskSucceeded | TaskFailed] = field(default_factory=list)

    def take(self, rows: list[OutboxRow]) -> None:
        for row in rows:
            if row.message.exchange == "":
                body = json.loads(row.message.body)
                message = TaskMessage.model_validate(body["args"][0])
                self.queued.append(message)
                self.dispatched.append(message)

    def report(self, report: TaskSucceeded | TaskFailed) -> None:
        with psycopg.connect(self.stack.database_url) as conn, conn.transaction():
            outcome = apply_reports(conn, self.topology, self.definitions, [report])
        self.applied.append(report)
        self.take(outcome.outbox_rows)

    async def _create(self, definition: WorkflowDefinition) -> str:
        conn = await psycopg.AsyncConnection.connect(self.stack.database_url)
        async with conn, conn.transaction():
            wv, _ = await api.register_workflow(conn, self.tenant_id, definition)
            trigger = await api.create_runs(
                conn, self.topology, self.tenant_id, wv, [api.RunRequest({})]
            )
        self.take(trigger.outbox_rows)
        return trigger.runs[0].run_id

    def create(self, definition: WorkflowDefinition) -> str:
        return asyncio.run(self._create(definition))

    async def _cancel(self, run_id: str) -> None:
        conn = await psycopg.AsyncConnection.connect(self.stack.database_url)
        async with conn, conn.transaction():
            await api.cancel_run(conn, self.topology, self.tenant_id, run_id)
        self.queued.clear()

    def cancel(self, run_id: str) -> None:
        asyncio.run(self._cancel(run_id))


def _succeeded(m: TaskMessage) -> TaskSucceeded:
    return TaskSucceeded(
        run_id=m.run_id,
        task_run_id=m.task_run_id,
        task=m.task,
        attempt=m.attempt,
        worker_id="prop@test:1",
        started_at=1.0,
        finished_at=2.0,
        output={"task": m.task, "attempt": m.attempt},
    )


def _failed(m: TaskMessage, retryable: bool) -> TaskFailed:
    return TaskFailed(
        run_id=m.run_id,
        task_run_id=m.task_run_id,
        task=m.task,
        attempt=m.attempt,
        worker_id="prop@test:1",
        started_at=1.0,
        finished_at=2.0,
        error=TaskError(type="Boom", message=f"{m.task} attempt {m.attempt} failed"),
        retryable=retryable,
        timed_out=False,
    )


@pytest.fixture(scope="module")
def world_base(stack: Stack) -> tuple[Stack, str, Topology]:
    (tenant_id,) = stack.sql("SELECT id::text FROM tenants ORDER BY created_at LIMIT 1")[0]
    return stack, str(tenant_id), Topology(stack.env["ROOST_NAMESPACE"])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(definition=workflows(), data=st.data())
def test_random_dags_with_random_outcomes_end_once_and_never_start_a_doomed_task(
    world_base: tuple[Stack, str, Topology], definition: WorkflowDefinition, data: st.DataObject
) -> None:
    stack, tenant_id, topology = world_base
    world = World(stack, tenant_id, topology)
    run_id = world.create(definition)
    by_name = {t.name: t for t in definition.tasks}

    for _ in range(MAX_STEPS):
        if not world.queued:
            break
        action = data.draw(
            st.sampled_from(["succeed", "succeed", "fail", "fail_final", "again", "cancel"])
        )
        if action == "cancel":
            world.cancel(run_id)
            break
        if action == "again" and world.applied:
            # A report redelivered or duplicated: it must change nothing.
            world.report(data.draw(st.sampled_from(world.applied)))
            continue
        message = world.queued.pop(data.draw(st.integers(0, len(world.queued) - 1)))
        if action in ("succeed", "again"):
            world.report(_succeeded(message))
        else:
            world.report(_failed(message, retryable=action == "fail"))

    (status,) = stack.sql("SELECT status FROM runs WHERE id = %s", run_id)[0]
    tasks = dict(stack.sql("SELECT task_name, status FROM task_runs WHERE run_id = %s", run_id))
    if world.queued:  # the step budget ran out first (rare): nothing more to check
        event("step budget ran out")
        return
    event(f"run {status}")

    # Exactly one final state, with every task final.
    finals = stack.sql(
        "SELECT type FROM events WHERE run_id = %s AND type = ANY(%s)",
        run_id,
        sorted(RUN_FINAL_TYPES),
    )
    assert len(finals) == 1, f"run events {finals}, status {status}, tasks {tasks}"
    assert finals[0][0] == f"run.{str(status).lower()}"
    assert all(s in ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT") for s in tasks.values())

    # Never dispatched before every parent succeeded (so never below a failed task).
    for message in world.dispatched:
        task = by_name.get(message.task)
        parents = task.parents if task is not None else []
        assert set(message.parent_outputs) == set(parents)
        for parent in parents:
            assert tasks[parent] == "SUCCEEDED", f"{message.task} dispatched, {parent} is not"

    # Every attempt ends at most once.
    ends = stack.sql(
        "SELECT task, attempt, count(*) FROM events WHERE run_id = %s"
        " AND type IN ('task.succeeded', 'task.failed', 'task.retrying', 'task.timed_out')"
        " GROUP BY 1, 2 HAVING count(*) > 1",
        run_id,
    )
    assert ends == [], f"attempts that ended more than once: {ends}"

    # A task fails for good only once its retries are used, or on a non-retryable error.
    retried = dict(
        stack.sql(
            "SELECT task, count(*) FROM events WHERE run_id = %s AND type = 'task.retrying'"
            " GROUP BY 1",
            run_id,
        )
    )
    final_failures = {
        (r.task, r.attempt) for r in world.applied if isinstance(r, TaskFailed) and not r.retryable
    }
    for name, task_status in tasks.items():
        task = by_name.get(name) or definition.on_failure
        assert task is not None
        assert retried.get(name, 0) <= task.retries, f"{name} retried past its retries"
        if task_status == "FAILED":
            (attempt,) = stack.sql(
                "SELECT attempt FROM task_runs WHERE run_id = %s AND task_name = %s", run_id, name
            )[0]
            assert retried.get(name, 0) == task.retries or (name, attempt) in final_failures, (
                f"{name} failed for good at attempt {attempt} with retries left"
            )

    # The run's status is the one its tasks' fates imply.
    failed = [n for n, s in tasks.items() if s == "FAILED" and n != "cleanup"]
    if status != "CANCELLED":
        assert status == ("FAILED" if failed else "SUCCEEDED"), tasks
        if failed and definition.on_failure is not None:
            assert "cleanup" in tasks, "a failed run with a handler ended without running it"
        if not failed:
            assert "cleanup" not in tasks
