"""The engine's transition for a durable task that suspends to wait (issue #18), on the
real database and with the session's real scheduler firing its timer: the task is
WAITING with what it waits for, holding its next attempt back until the wait is over;
the suspended attempt is kept in the history and is not a failure; a duplicate report
changes nothing; cancelling the run ends the wait."""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
import pytest

from harness import Stack
from roost_api import store as api
from roost_core.engine.reports import apply_reports
from roost_core.engine.state import Definitions
from roost_core.topology import Topology
from roost_core.wire import DurableCall, TaskError, TaskFailed, TaskWaiting, WorkflowDefinition


@pytest.fixture(scope="module")
def base(stack: Stack) -> tuple[Stack, str, Topology]:
    (tenant_id,) = stack.sql("SELECT id::text FROM tenants ORDER BY created_at LIMIT 1")[0]
    return stack, str(tenant_id), Topology(stack.env["ROOST_NAMESPACE"])


def _run(stack: Stack, tenant_id: str, topology: Topology, retries: int = 0) -> tuple[str, str]:
    """A run of a one-task workflow nobody serves; its run id and task run id."""
    definition = WorkflowDefinition.model_validate(
        {
            "name": f"waits-{uuid.uuid4().hex[:10]}",
            "tasks": [{"name": "only", "retries": retries, "backoff_initial_seconds": 0}],
        }
    )

    async def create() -> str:
        conn = await psycopg.AsyncConnection.connect(stack.database_url)
        async with conn, conn.transaction():
            wv, _ = await api.register_workflow(conn, tenant_id, definition)
            made = await api.create_runs(conn, topology, tenant_id, wv, [api.RunRequest({})])
        return made.runs[0].run_id

    run_id = asyncio.run(create())
    ((task_run_id,),) = stack.sql("SELECT id::text FROM task_runs WHERE run_id = %s", run_id)
    return run_id, str(task_run_id)


def _report(stack: Stack, topology: Topology, report: TaskWaiting | TaskFailed) -> int:
    with psycopg.connect(stack.database_url) as conn, conn.transaction():
        return apply_reports(conn, topology, Definitions(), [report]).applied


def _waiting(run_id: str, task_run_id: str, attempt: int, until: float) -> TaskWaiting:
    now = time.time()
    return TaskWaiting(
        run_id=run_id,
        task_run_id=task_run_id,
        task="only",
        attempt=attempt,
        worker_id="waits@test:1",
        started_at=now - 0.1,
        finished_at=now,
        journal=[
            DurableCall(seq=0, kind="step", name="open-pr", result={"n": 7}),
            DurableCall(seq=1, kind="sleep", name="sleep", until=until),
        ],
        until=until,
        reason="sleep",
    )


def test_a_suspended_attempt_waits_then_its_next_attempt_is_queued(
    base: tuple[Stack, str, Topology],
) -> None:
    stack, tenant_id, topology = base
    run_id, task_run_id = _run(stack, tenant_id, topology, retries=1)
    until = time.time() + 1.0

    assert _report(stack, topology, _waiting(run_id, task_run_id, 1, until)) == 1
    assert _report(stack, topology, _waiting(run_id, task_run_id, 1, until)) == 0  # a duplicate

    ((status, attempt, waiting, journal),) = stack.sql(
        "SELECT status, attempt, waiting, journal FROM task_runs WHERE id = %s", task_run_id
    )
    assert (status, attempt) == ("WAITING", 2)
    assert waiting == {"reason": "sleep", "until": until}
    assert [c["name"] for c in journal] == ["open-pr", "sleep"] and journal[0]["result"] == {"n": 7}
    history = stack.sql(
        "SELECT attempt, status, error FROM task_attempts WHERE task_run_id = %s", task_run_id
    )
    assert history == [(1, "WAITING", None)]
    run = stack.api_get(f"/api/v1/runs/{run_id}")
    assert run["status"] == "RUNNING" and run["tasks"][0]["status"] == "WAITING"

    # The session's scheduler fires the timer once the wait is over.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ((status, queued_at, waiting),) = stack.sql(
            "SELECT status, queued_at, waiting FROM task_runs WHERE id = %s", task_run_id
        )
        if status == "QUEUED":
            break
        time.sleep(0.1)
    assert status == "QUEUED" and queued_at is not None and waiting is None
    assert queued_at.timestamp() >= until - 0.05

    # The waiting attempt was no failure: the one retry is still there.
    now = time.time()
    failed = TaskFailed(
        run_id=run_id,
        task_run_id=task_run_id,
        task="only",
        attempt=2,
        worker_id="waits@test:1",
        started_at=now - 0.1,
        finished_at=now,
        error=TaskError(type="RuntimeError", message="boom", traceback=""),
    )
    assert _report(stack, topology, failed) == 1
    ((status, attempt),) = stack.sql(
        "SELECT status, attempt FROM task_runs WHERE id = %s", task_run_id
    )
    assert (status, attempt) == ("QUEUED", 3)


def test_cancelling_a_run_ends_its_waiting_task(base: tuple[Stack, str, Topology]) -> None:
    stack, tenant_id, topology = base
    run_id, task_run_id = _run(stack, tenant_id, topology)
    assert _report(stack, topology, _waiting(run_id, task_run_id, 1, time.time() + 600)) == 1

    async def cancel() -> None:
        conn = await psycopg.AsyncConnection.connect(stack.database_url)
        async with conn, conn.transaction():
            await api.cancel_run(conn, topology, tenant_id, run_id)

    asyncio.run(cancel())
    ((status, dispatch_at, waiting),) = stack.sql(
        "SELECT status, dispatch_at, waiting FROM task_runs WHERE id = %s", task_run_id
    )
    assert status == "CANCELLED" and dispatch_at is None and waiting is None
    assert stack.api_get(f"/api/v1/runs/{run_id}")["status"] == "CANCELLED"
