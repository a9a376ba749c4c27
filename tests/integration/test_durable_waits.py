"""The engine's transition for a durable task that suspends to wait (issue #18), on the
real database and with the session's real scheduler firing its timer: the task is
WAITING with what it waits for, holding its next attempt back until the wait is over;
the suspended attempt is kept in the history and is not a failure; a duplicate report
changes nothing; cancelling the run ends the wait."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import psycopg
import pytest

from harness import Stack
from roost_api import store as api
from roost_core.engine.reports import apply_reports
from roost_core.engine.state import Definitions
from roost_core.topology import Topology
from roost_core.wire import (
    DurableCall,
    EventWait,
    TaskError,
    TaskFailed,
    TaskWaiting,
    WorkflowDefinition,
)


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


# -- waiting for an event (ctx.wait_for_event) -------------------------------------------


def _event_wait(
    run_id: str,
    task_run_id: str,
    key: str,
    *,
    filter: str | None = None,
    since: float | None = None,
    timeout: float | None = None,
) -> TaskWaiting:
    now = time.time()
    until = now + timeout if timeout is not None else None
    return TaskWaiting(
        run_id=run_id,
        task_run_id=task_run_id,
        task="only",
        attempt=1,
        worker_id="waits@test:1",
        started_at=now - 0.1,
        finished_at=now,
        journal=[
            DurableCall(seq=0, kind="step", name="open-pr", result={"n": 7}),
            DurableCall(seq=1, kind="event", name=key, until=until),
        ],
        until=until,
        reason="event",
        event=EventWait(key=key, filter=filter, since=now if since is None else since),
    )


def _push(stack: Stack, key: str, data: object) -> str:
    r = httpx.post(
        f"{stack.api_url}/api/v1/events",
        json={"key": key, "data": data},
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _woken(stack: Stack, task_run_id: str, timeout: float = 15) -> list[dict[str, object]]:
    """The journal of the task once the scheduler has sent it again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ((status, journal),) = stack.sql(
            "SELECT status, journal FROM task_runs WHERE id = %s", task_run_id
        )
        if status != "WAITING":
            return list(journal)
        time.sleep(0.1)
    raise AssertionError(f"task run {task_run_id} still WAITING")


def test_an_event_that_passes_the_filter_ends_the_wait_and_others_do_not(
    base: tuple[Stack, str, Topology],
) -> None:
    stack, tenant_id, topology = base
    run_id, task_run_id = _run(stack, tenant_id, topology)
    key = f"ci:{uuid.uuid4().hex[:8]}"
    assert (
        _report(stack, topology, _event_wait(run_id, task_run_id, key, filter="payload.pr == 7"))
        == 1
    )
    waiting = stack.api_get(f"/api/v1/runs/{run_id}")["tasks"][0]["waiting"]
    assert waiting == {"reason": "event", "until": None, "key": key, "filter": "payload.pr == 7"}

    _push(stack, key, {"pr": 8})  # fails the filter
    _push(stack, f"{key}-other", {"pr": 7})  # another key
    time.sleep(1.5)
    assert stack.sql("SELECT status FROM task_runs WHERE id = %s", task_run_id) == [("WAITING",)]

    wanted = _push(stack, key, {"pr": 7})
    journal = _woken(stack, task_run_id)
    assert journal[1]["result"]["id"] == wanted and journal[1]["result"]["data"] == {"pr": 7}
    assert journal[0]["result"] == {"n": 7}  # the rest of the journal as it was
    assert stack.sql("SELECT count(*) FROM event_waits WHERE task_run_id = %s", task_run_id) == [
        (0,)
    ]


def test_two_waits_on_one_key_each_take_one_event_and_a_lookback_counts(
    base: tuple[Stack, str, Topology],
) -> None:
    stack, tenant_id, topology = base
    key = f"ready:{uuid.uuid4().hex[:8]}"
    early = _push(stack, key, {"n": 1})  # before either wait began
    time.sleep(0.05)
    first = _run(stack, tenant_id, topology)
    second = _run(stack, tenant_id, topology)
    # The first looks back 60 s, so the early event counts for it; the second does not.
    assert _report(stack, topology, _event_wait(*first, key, since=time.time() - 60)) == 1
    assert _report(stack, topology, _event_wait(*second, key)) == 1
    assert _woken(stack, first[1])[1]["result"]["id"] == early
    time.sleep(1.0)
    assert stack.sql("SELECT status FROM task_runs WHERE id = %s", second[1]) == [("WAITING",)]

    later = _push(stack, key, {"n": 2})
    assert _woken(stack, second[1])[1]["result"]["id"] == later


def test_an_event_wait_that_times_out_is_sent_without_an_event(
    base: tuple[Stack, str, Topology],
) -> None:
    stack, tenant_id, topology = base
    run_id, task_run_id = _run(stack, tenant_id, topology)
    key = f"never:{uuid.uuid4().hex[:8]}"
    assert _report(stack, topology, _event_wait(run_id, task_run_id, key, timeout=1.0)) == 1

    journal = _woken(stack, task_run_id)
    assert journal[1]["result"] is None and journal[1]["until"] is not None
    assert stack.sql("SELECT count(*) FROM event_waits WHERE task_run_id = %s", task_run_id) == [
        (0,)
    ]
    _push(stack, key, {})  # too late: it starts nothing and ends no wait
    time.sleep(1.0)
    assert stack.sql(
        "SELECT count(*) FROM event_wait_matches WHERE task_run_id = %s", task_run_id
    ) == [(0,)]


def test_cancelling_a_waiting_task_on_its_own_ends_it_and_its_wait(
    base: tuple[Stack, str, Topology],
) -> None:
    stack, tenant_id, topology = base
    run_id, task_run_id = _run(stack, tenant_id, topology)
    assert _report(stack, topology, _waiting(run_id, task_run_id, 1, time.time() + 2)) == 1

    r = httpx.post(
        f"{stack.api_url}/api/v1/runs/{run_id}/tasks/only/cancel",
        json={"reason": "not needed"},
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=30,
    )
    assert r.status_code == 202, r.text  # the scheduler ends it

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if stack.api_get(f"/api/v1/runs/{run_id}")["status"] == "CANCELLED":
            break
        time.sleep(0.1)
    task = stack.api_get(f"/api/v1/runs/{run_id}")["tasks"][0]
    assert task["status"] == "CANCELLED" and task["waiting"] is None
    assert task["error"]["message"] == "not needed"
    time.sleep(2.5)  # past the wake time: the cancelled task was not sent again
    assert stack.api_get(f"/api/v1/runs/{run_id}")["tasks"][0]["status"] == "CANCELLED"


def _any_wait(
    run_id: str, task_run_id: str, branches: dict[str, str], timeout: float | None = None
) -> TaskWaiting:
    now = time.time()
    until = now + timeout if timeout is not None else None
    names = ",".join(sorted([*branches, *(["sleep"] if timeout is not None else [])]))
    return TaskWaiting(
        run_id=run_id,
        task_run_id=task_run_id,
        task="only",
        attempt=1,
        worker_id="waits@test:1",
        started_at=now - 0.1,
        finished_at=now,
        journal=[DurableCall(seq=0, kind="any", name=names, until=until)],
        until=until,
        reason="any",
        events=[EventWait(key=k, since=now, name=n) for n, k in branches.items()],
    )


def test_the_first_branch_of_an_any_wait_to_get_an_event_ends_it_and_the_rest_take_none(
    base: tuple[Stack, str, Topology],
) -> None:
    stack, tenant_id, topology = base
    run_id, task_run_id = _run(stack, tenant_id, topology)
    ci, closed = f"ci:{uuid.uuid4().hex[:8]}", f"closed:{uuid.uuid4().hex[:8]}"
    assert _report(stack, topology, _any_wait(run_id, task_run_id, {"ci": ci, "closed": closed}))
    waiting = stack.api_get(f"/api/v1/runs/{run_id}")["tasks"][0]["waiting"]
    assert waiting["reason"] == "any" and set(waiting["events"]) == {"ci", "closed"}

    fired = _push(stack, closed, {"why": "abandoned"})
    journal = _woken(stack, task_run_id)
    assert journal[0]["result"]["fired"] == "closed"
    assert journal[0]["result"]["event"]["id"] == fired
    assert stack.sql("SELECT count(*) FROM event_waits WHERE task_run_id = %s", task_run_id) == [
        (0,)
    ]
    # The other branch's key is untouched: its event stays for others.
    other = _push(stack, ci, {"pr": 7})
    assert stack.sql("SELECT count(*) FROM event_wait_matches WHERE event_id = %s", other) == [(0,)]


def test_the_timer_branch_of_an_any_wait_sends_it_with_nothing_fired(
    base: tuple[Stack, str, Topology],
) -> None:
    stack, tenant_id, topology = base
    run_id, task_run_id = _run(stack, tenant_id, topology)
    key = f"ci:{uuid.uuid4().hex[:8]}"
    assert _report(stack, topology, _any_wait(run_id, task_run_id, {"ci": key}, timeout=1.0))
    journal = _woken(stack, task_run_id)
    assert journal[0]["result"] is None and journal[0]["kind"] == "any"
    assert stack.sql("SELECT count(*) FROM event_waits WHERE task_run_id = %s", task_run_id) == [
        (0,)
    ]


def test_a_join_on_a_child_that_ended_before_the_wait_was_recorded_still_ends(
    base: tuple[Stack, str, Topology],
) -> None:
    """Level-triggered: the scheduler's probe finds ended children whenever it looks, so a
    child that ended while its parent's report was on the way counts all the same."""
    stack, tenant_id, topology = base
    run_id, task_run_id = _run(stack, tenant_id, topology)
    child_id, _ = _run(stack, tenant_id, topology)
    stack.sql(
        "UPDATE runs SET status = 'SUCCEEDED', output = '{\"only\": {\"n\": 7}}' WHERE id = %s"
        " RETURNING id",
        child_id,
    )
    now = time.time()
    joined = TaskWaiting(
        run_id=run_id,
        task_run_id=task_run_id,
        task="only",
        attempt=1,
        worker_id="waits@test:1",
        started_at=now - 0.1,
        finished_at=now,
        journal=[
            DurableCall(seq=0, kind="spawn", name="child", children=[child_id]),
            DurableCall(seq=1, kind="join", name="child", children=[child_id]),
        ],
        until=None,
        reason="children",
        children=[child_id],
    )
    assert _report(stack, topology, joined) == 1
    journal = _woken(stack, task_run_id)
    [outcome] = journal[1]["result"]["runs"]
    assert outcome["id"] == child_id and outcome["status"] == "SUCCEEDED"
    assert outcome["output"] == {"only": {"n": 7}}
    assert stack.sql("SELECT count(*) FROM child_waits WHERE task_run_id = %s", task_run_id) == [
        (0,)
    ]
