"""Triggers accepted into RabbitMQ (``Prefer: respond-async``, issue #17): the api
answers 202 once RabbitMQ holds the trigger, the scheduler creates the run moments later
with others, and the run can be read, waited on and cancelled from the answer on, even
before it exists in PostgreSQL. A trigger whose answer needs PostgreSQL is created at
once as before; a bad one is refused before anything is accepted."""

from __future__ import annotations

import asyncio
import time
import uuid
from types import ModuleType
from typing import Any

import httpx
import pika
import pytest
from scrape import histogram_totals

from harness import Process, Stack
from roost import Roost
from roost_core.api_shapes import AcceptedRun
from roost_core.topology import RUN_ACCEPTED, Topology
from roost_core.wire import RunAccepted

PREFER = {"Prefer": "respond-async"}


def _auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}"}


def _register(stack: Stack, **extra: Any) -> dict[str, Any]:
    """A two-task workflow no worker serves: its runs stay QUEUED."""
    name = f"accept-{uuid.uuid4().hex[:8]}"
    body = {
        "name": name,
        "tasks": [{"name": "a", "parents": []}, {"name": "b", "parents": ["a"]}],
        **extra,
    }
    r = httpx.post(f"{stack.api_url}/api/v1/workflows", json=body, headers=_auth(stack))
    assert r.status_code == 201, r.text
    registered: dict[str, Any] = r.json()
    return registered


def _trigger(stack: Stack, name: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(
        f"{stack.api_url}/api/v1/workflows/{name}/runs",
        json=body,
        headers={**_auth(stack), **PREFER, **headers},
        timeout=30,
    )


def _accept_batches(stack: Stack) -> tuple[float, float]:
    """The api's ``roost_accept_batch_size`` histogram: (transactions, requests)."""
    return histogram_totals(stack.api_url, "roost_accept_batch_size")


def test_an_accepted_run_is_answered_202_and_readable_at_once_with_its_own_trace(
    stack: Stack,
) -> None:
    name = _register(stack)["name"]
    trace_id = uuid.uuid4().hex
    r = _trigger(stack, name, {"input": {"n": 7}}, traceparent=f"00-{trace_id}-{'2' * 16}-01")

    assert r.status_code == 202, r.text
    assert r.headers["preference-applied"] == "respond-async"
    accepted = r.json()
    run_id = accepted["id"]
    assert uuid.UUID(run_id).version == 7
    assert r.headers["location"] == f"/api/v1/runs/{run_id}"
    assert accepted["workflow"] == name and accepted["status"] == "QUEUED"
    # Read at once: the api waits the moment it takes the scheduler to create it.
    got = httpx.get(f"{stack.api_url}/api/v1/runs/{run_id}", headers=_auth(stack), timeout=10)
    assert got.status_code == 200, got.text
    run = got.json()
    assert run["input"] == {"n": 7} and run["status"] == "QUEUED"
    assert [(t["name"], t["status"]) for t in run["tasks"]] == [("a", "QUEUED"), ("b", "PENDING")]
    trace = httpx.get(
        f"{stack.api_url}/api/v1/runs/{run_id}/trace", headers=_auth(stack), timeout=10
    )
    assert trace.status_code == 200 and trace.json()["trace_id"] == trace_id


def test_concurrent_accepted_triggers_each_make_exactly_their_own_run(stack: Stack) -> None:
    name = _register(stack)["name"]

    async def all_of_them() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"/api/v1/workflows/{name}/runs",
                        json={"input": {"i": i}},
                        headers={**_auth(stack), **PREFER},
                    )
                    for i in range(30)
                )
            )

    before = _accept_batches(stack)
    responses = asyncio.run(all_of_them())

    assert [r.status_code for r in responses] == [202] * 30
    transactions, requests = (a - b for a, b in zip(_accept_batches(stack), before, strict=True))
    assert requests == 30 and transactions < 30  # some shared an AMQP transaction
    ids = [r.json()["id"] for r in responses]
    for i, run_id in enumerate(ids):
        run = stack.api_get(f"/api/v1/runs/{run_id}")
        assert run["input"] == {"i": i}
    rows = stack.sql("SELECT count(*) FROM runs WHERE workflow_name = %s", name)
    assert rows == [(30,)]


def test_a_trigger_whose_answer_needs_postgresql_is_created_at_once(stack: Stack) -> None:
    name = _register(stack)["name"]
    r = _trigger(stack, name, {"input": {}, "idempotency_key": "k1"})
    assert r.status_code == 201, r.text
    assert "preference-applied" not in r.headers
    again = _trigger(stack, name, {"input": {}, "idempotency_key": "k1"})
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]


def test_a_bad_trigger_is_refused_before_it_is_accepted(stack: Stack) -> None:
    schema = {"type": "object", "required": ["repo"], "properties": {"repo": {"type": "string"}}}
    name = _register(stack, input_schema=schema)["name"]
    bad = _trigger(stack, name, {"input": {"repo": 5}})
    assert bad.status_code == 422 and "repo" in bad.text
    unknown = _trigger(stack, f"no-such-{uuid.uuid4().hex[:6]}", {"input": {}})
    assert unknown.status_code == 404
    assert stack.sql("SELECT count(*) FROM runs WHERE workflow_name = %s", name) == [(0,)]


def test_a_run_accepted_through_the_sdk_runs_to_its_result(
    stack: Stack, flows: ModuleType, basic_worker: Process, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flows.roost.settings, "respond_async", True)
    ref = flows.chain.run({"task_id": "accepted-1"}, wait_for_result=False)

    assert uuid.UUID(ref.id).version == 7  # it took the accepted way
    # Streamed from the answer on, through the gateway, from its first event to its end.
    types = [e.type for e in ref.stream()]
    assert types[0] == "run.queued" and types[-1] == "run.succeeded"
    outputs = ref.result(timeout=30)
    assert outputs["commit"]["committed"] is True
    assert outputs["commit"]["task_id"] == "accepted-1"
    client = Roost(respond_async=True)
    created = client.workflows.trigger("t-chain", {"task_id": "accepted-2"}, respond_async=True)
    assert isinstance(created, AcceptedRun)
    assert client.runs.wait(created.id, 30).status == "SUCCEEDED"


def test_a_redelivered_acceptance_creates_its_run_once(stack: Stack) -> None:
    registered = _register(stack)
    name = registered["name"]
    [(tenant_id, workflow_id, version_id)] = stack.sql(
        "SELECT w.tenant_id, w.id, v.id FROM workflows w"
        " JOIN workflow_versions v ON v.workflow_id = w.id WHERE w.name = %s",
        name,
    )
    first = _trigger(stack, name, {"input": {"x": 1}}).json()["id"]
    stack.api_get(f"/api/v1/runs/{first}")  # created
    # The same message again, as RabbitMQ redelivers it to a scheduler that died
    # before acknowledging it (and twice more in one batch).
    again = RunAccepted(
        tenant_id=str(tenant_id),
        workflow_id=str(workflow_id),
        version_id=str(version_id),
        run_id=first,
        input={"x": 1},
    )
    connection = pika.BlockingConnection(pika.URLParameters(stack.env["ROOST_BROKER_URL"]))
    try:
        channel = connection.channel()
        for _ in range(3):
            channel.basic_publish(
                Topology(stack.env["ROOST_NAMESPACE"]).events_exchange,
                RUN_ACCEPTED,
                again.model_dump_json().encode(),
            )
    finally:
        connection.close()
    second = _trigger(stack, name, {"input": {"x": 2}}).json()["id"]
    stack.api_get(f"/api/v1/runs/{second}")  # created after the redeliveries were taken

    assert stack.sql("SELECT count(*) FROM runs WHERE workflow_name = %s", name) == [(2,)]
    assert stack.sql("SELECT count(*) FROM task_runs WHERE run_id = %s", first) == [(2,)]
    events = stack.sql(
        "SELECT count(*) FROM events WHERE run_id = %s AND type = 'run.queued'", first
    )
    assert events == [(1,)]


def test_an_accepted_run_waits_in_rabbitmq_while_no_scheduler_runs(stack: Stack) -> None:
    name = _register(stack)["name"]
    # Every scheduler that runs (other tests may have replaced, added or killed some).
    schedulers = [
        p for p in stack.processes if p.name.startswith("scheduler") and p.popen.poll() is None
    ]
    assert schedulers
    for scheduler in schedulers:
        stack.stop_one(scheduler)
    try:
        r = _trigger(stack, name, {"input": {"late": True}})
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        started = time.monotonic()
        missing = httpx.get(
            f"{stack.api_url}/api/v1/runs/{run_id}", headers=_auth(stack), timeout=10
        )
        # Not created yet: the reader waited a moment for it, then says why it has none.
        assert missing.status_code == 404
        assert "not created yet" in missing.text and run_id in missing.text
        assert time.monotonic() - started >= 1.5
    finally:
        for scheduler in schedulers:
            stack.spawn(scheduler.name, *scheduler.args, extra_env=scheduler.extra_env)
    # Durable all along: the scheduler that starts creates it.
    deadline = time.monotonic() + 60
    while True:
        got = httpx.get(f"{stack.api_url}/api/v1/runs/{run_id}", headers=_auth(stack), timeout=10)
        if got.status_code == 200 or time.monotonic() > deadline:
            break
    assert got.status_code == 200, got.text
    assert got.json()["input"] == {"late": True} and got.json()["status"] == "QUEUED"


def test_an_accepted_run_that_cannot_be_created_is_dead_lettered_and_the_rest_go_on(
    stack: Stack,
) -> None:
    name = _register(stack)["name"]
    [(tenant_id, workflow_id, version_id)] = stack.sql(
        "SELECT w.tenant_id, w.id, v.id FROM workflows w"
        " JOIN workflow_versions v ON v.workflow_id = w.id WHERE w.name = %s",
        name,
    )
    topology = Topology(stack.env["ROOST_NAMESPACE"])
    # Not from the api (it refuses a NUL character): PostgreSQL cannot store this input,
    # so its run would fail every batch it is in.
    poison = RunAccepted(
        tenant_id=str(tenant_id),
        workflow_id=str(workflow_id),
        version_id=str(version_id),
        run_id=str(uuid.uuid4()),
        input={"x": "nul\u0000"},
    )
    connection = pika.BlockingConnection(pika.URLParameters(stack.env["ROOST_BROKER_URL"]))
    try:
        channel = connection.channel()
        channel.basic_publish(
            topology.events_exchange, RUN_ACCEPTED, poison.model_dump_json().encode()
        )
        after = _trigger(stack, name, {"input": {"ok": True}})
        assert after.status_code == 202
        # The next run is created all the same, and the poison waits for a human.
        run = stack.api_get(f"/api/v1/runs/{after.json()['id']}")
        assert run["input"] == {"ok": True}
        deadline = time.monotonic() + 30
        while (dead := channel.basic_get(topology.scheduler_dead_queue, auto_ack=True))[2] is None:
            assert time.monotonic() < deadline, "the poison was not dead-lettered"
            time.sleep(0.1)
        assert RunAccepted.model_validate_json(dead[2]).run_id == poison.run_id
    finally:
        connection.close()
    assert stack.sql("SELECT count(*) FROM runs WHERE id = %s", poison.run_id) == [(0,)]
