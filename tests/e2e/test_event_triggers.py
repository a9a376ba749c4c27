"""Event triggers: a pushed event starts a run of every workflow whose on_events matches
its key, on the real stack (api, scheduler, a worker, PostgreSQL, RabbitMQ)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from types import ModuleType

import httpx
import pytest

import roost
from harness import Process, Stack

EXACT, PREFIX, OTHER = "t-trig-exact", "t-trig-prefix", "t-trig-other"


@pytest.fixture(scope="module")
def triggered_worker(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    """A worker serving the three t-trig-* workflows (registering them, with their
    on_events patterns, as it starts)."""
    proc = stack.start_worker(
        "roost_testapps.flows:triggered", processes=1, threads=4, name="triggered"
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url, timeout=30, headers={"Authorization": f"Bearer {stack.token}"}
    ) as client:
        yield client


def runs_with_input(stack: Stack, data: dict) -> dict[str, list[str]]:
    """Run ids by workflow, of the runs whose input is exactly ``data`` (SQL)."""
    found: dict[str, list[str]] = {}
    for workflow, run_id in stack.sql(
        "SELECT workflow_name, id FROM runs WHERE input = %s::jsonb ORDER BY workflow_name",
        json.dumps(data),
    ):
        found.setdefault(str(workflow), []).append(str(run_id))
    return found


def stored_events(stack: Stack, key: str) -> int:
    ((count,),) = stack.sql("SELECT count(*) FROM pushed_events WHERE key = %s", key)
    return int(str(count))


def test_a_pushed_event_starts_one_run_of_each_matching_workflow_and_no_other(
    stack: Stack, flows: ModuleType, triggered_worker: Process
) -> None:
    data = {"task_id": f"bd-{uuid.uuid4().hex[:8]}"}

    event = flows.roost.events.push("task:ready", data)

    assert isinstance(event, roost.PushedEvent)
    assert event.key == "task:ready" and event.data == data and event.idempotency_key is None
    assert sorted(r.workflow for r in event.runs) == [EXACT, PREFIX]
    # What the database holds: one run of each matching workflow, none of the other.
    in_db = runs_with_input(stack, data)
    assert {w: len(ids) for w, ids in in_db.items()} == {EXACT: 1, PREFIX: 1}
    assert sorted(r.id for r in event.runs) == sorted(in_db[EXACT] + in_db[PREFIX])
    assert stack.sql(
        "SELECT count(*) FROM runs WHERE workflow_name = %s AND input = %s::jsonb",
        OTHER,
        json.dumps(data),
    ) == [(0,)]

    # Both runs succeed, with the event's data as their input.
    by_workflow = {r.workflow: r.id for r in event.runs}
    exact = flows.roost.runs.wait(by_workflow[EXACT], timeout=60)
    prefix = flows.roost.runs.wait(by_workflow[PREFIX], timeout=60)
    assert exact.status == roost.RunStatus.SUCCEEDED and exact.input == data
    assert exact.output == {"exact_echo": data}
    assert prefix.status == roost.RunStatus.SUCCEEDED and prefix.input == data
    assert prefix.output == {"prefix_echo": {**data, "priority": 1}}

    # The stored event lists exactly those runs.
    again = flows.roost.events.get(event.id)
    assert again.id == event.id and again.key == "task:ready" and again.data == data
    assert sorted(r.id for r in again.runs) == sorted(r.id for r in event.runs)
    assert {r.workflow for r in again.runs} == {EXACT, PREFIX}


def test_an_event_matching_no_workflow_is_stored_with_no_runs(
    api: httpx.Client, stack: Stack, triggered_worker: Process
) -> None:
    key = f"nobody:{uuid.uuid4().hex[:8]}"

    r = api.post("/api/v1/events", json={"key": key, "data": {"x": 1}})

    assert r.status_code == 201, r.text
    assert r.json()["runs"] == [] and r.json()["key"] == key
    assert stored_events(stack, key) == 1
    shown = api.get(f"/api/v1/pushed-events/{r.json()['id']}")
    assert shown.status_code == 200 and shown.json() == r.json()


def test_the_same_idempotency_key_twice_starts_nothing_more(
    api: httpx.Client, stack: Stack, flows: ModuleType, triggered_worker: Process
) -> None:
    data = {"task_id": f"idem-{uuid.uuid4().hex[:8]}"}
    key = f"idem-{uuid.uuid4()}"

    first = api.post(
        "/api/v1/events", json={"key": "task:ready", "data": data, "idempotency_key": key}
    )
    second = api.post(
        "/api/v1/events", json={"key": "task:ready", "data": data, "idempotency_key": key}
    )
    via_sdk = flows.roost.events.push("task:ready", data, idempotency_key=key)

    assert first.status_code == 201, first.text
    assert second.status_code == 200, second.text
    assert second.json() == first.json()
    assert via_sdk.id == first.json()["id"]
    assert len(first.json()["runs"]) == 2
    assert {w: len(ids) for w, ids in runs_with_input(stack, data).items()} == {
        EXACT: 1,
        PREFIX: 1,
    }
    assert stack.sql("SELECT count(*) FROM pushed_events WHERE idempotency_key = %s", key) == [(1,)]


def test_bulk_push_starts_each_events_runs_in_one_request(
    stack: Stack, flows: ModuleType, triggered_worker: Process
) -> None:
    tag = uuid.uuid4().hex[:8]
    events = [
        {"key": "task:ready", "data": {"task_id": f"both-{tag}"}},
        {"key": f"task:{tag}", "data": {"task_id": f"prefix-{tag}"}},
        {"key": f"other:{tag}", "data": {"other": tag}},
        {"key": f"none:{tag}", "data": {"none": tag}},
        {"key": f"other:{tag}", "data": {"dup": tag}, "idempotency_key": f"bulk-{tag}"},
        {"key": f"other:{tag}", "data": {"dup": tag}, "idempotency_key": f"bulk-{tag}"},
    ]

    pushed = flows.roost.events.push_many(events)

    assert [e.key for e in pushed] == [e["key"] for e in events]
    workflows = [sorted(r.workflow for r in e.runs) for e in pushed]
    assert workflows == [[EXACT, PREFIX], [PREFIX], [OTHER], [], [OTHER], [OTHER]]
    # The repeated idempotency key is one event, with one run.
    assert pushed[4].id == pushed[5].id and pushed[4].runs == pushed[5].runs
    assert runs_with_input(stack, {"dup": tag}) == {OTHER: [pushed[4].runs[0].id]}
    assert runs_with_input(stack, {"task_id": f"both-{tag}"}).keys() == {EXACT, PREFIX}
    for event in pushed:
        for run in event.runs:
            done = flows.roost.runs.wait(run.id, timeout=60)
            assert done.status == roost.RunStatus.SUCCEEDED, done.error
            assert done.input == event.data


def test_data_rejected_by_a_workflows_input_model_stores_nothing(
    api: httpx.Client, stack: Stack, flows: ModuleType, triggered_worker: Process
) -> None:
    data = {"priority": "high", "tag": uuid.uuid4().hex}  # no task_id, priority not an int
    key = f"task:bad-{uuid.uuid4().hex[:8]}"

    r = api.post("/api/v1/events", json={"key": key, "data": data})

    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_input"
    assert PREFIX in error["message"] and "task_id" in error["message"]
    assert key in error["message"]
    with pytest.raises(roost.InvalidInputError, match=PREFIX):
        flows.roost.events.push(key, data)
    assert stored_events(stack, key) == 0
    assert runs_with_input(stack, data) == {}


def test_one_rejected_event_rejects_the_whole_bulk_push(
    api: httpx.Client, stack: Stack, triggered_worker: Process
) -> None:
    tag = uuid.uuid4().hex[:8]
    good = {"key": f"other:{tag}", "data": {"fine": tag}}
    bad = {"key": f"task:{tag}", "data": {"not": "a task"}}

    r = api.post("/api/v1/events/bulk", json={"events": [good, bad]})

    assert r.status_code == 422, r.text
    assert "events[1]" in r.json()["error"]["message"]
    assert PREFIX in r.json()["error"]["message"]
    assert stored_events(stack, f"other:{tag}") == 0 and stored_events(stack, f"task:{tag}") == 0
    assert runs_with_input(stack, {"fine": tag}) == {}


@pytest.mark.parametrize("key", ["", "has space", "task:*", "k" * 201])
def test_a_bad_event_key_is_rejected_naming_it(api: httpx.Client, key: str) -> None:
    r = api.post("/api/v1/events", json={"key": key, "data": {}})

    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert repr(key)[:30] in r.json()["error"]["message"]


def test_an_unknown_pushed_event_is_not_found(api: httpx.Client, flows: ModuleType) -> None:
    missing = str(uuid.uuid4())

    r = api.get(f"/api/v1/pushed-events/{missing}")
    malformed = api.get("/api/v1/pushed-events/not-an-id")

    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert missing in r.json()["error"]["message"]
    assert malformed.status_code == 404 and "not-an-id" in malformed.json()["error"]["message"]
    with pytest.raises(roost.NotFoundError, match=missing):
        flows.roost.events.get(missing)


def test_pushed_events_are_listed_newest_first_by_key_a_page_at_a_time(
    flows: ModuleType, triggered_worker: Process
) -> None:
    key = f"none:list-{uuid.uuid4().hex[:8]}"
    ids = [flows.roost.events.push(key, {"n": n}).id for n in range(3)]

    page, cursor = flows.roost.events.list(key=key, limit=2)
    rest, last = flows.roost.events.list(key=key, limit=2, cursor=cursor)

    assert [e.id for e in page + rest] == ids[::-1]
    assert [e.data for e in page + rest] == [{"n": 2}, {"n": 1}, {"n": 0}]
    assert cursor is not None and last is None
    everything, _ = flows.roost.events.list(limit=500)
    assert set(ids) <= {e.id for e in everything}


def test_the_cli_pushes_an_event_and_lists_it(
    stack: Stack, flows: ModuleType, triggered_worker: Process
) -> None:
    tag = uuid.uuid4().hex[:8]
    data = {"task_id": f"cli-{tag}"}

    pushed = stack.roost(
        "events", "push", "task:ready", "--data", json.dumps(data), "--idempotency-key", tag
    )

    in_db = runs_with_input(stack, data)
    assert in_db.keys() == {EXACT, PREFIX}
    (event_id,) = stack.sql("SELECT id FROM pushed_events WHERE idempotency_key = %s", tag)[0]
    assert f"event {event_id}" in pushed and "2 run(s)" in pushed
    for workflow, (run_id,) in in_db.items():
        assert f"run {run_id} of {workflow}" in pushed

    again = stack.roost("events", "push", "task:ready", "--data", "{}", "--idempotency-key", tag)
    assert f"event {event_id}" in again
    assert runs_with_input(stack, data).keys() == {EXACT, PREFIX}

    listed = json.loads(stack.roost("events", "list", "--key", "task:ready", "--json"))
    [mine] = [e for e in listed if e["id"] == str(event_id)]
    assert sorted(r["workflow"] for r in mine["runs"]) == [EXACT, PREFIX]
    table = stack.roost("events", "list", "--key", "task:ready", "--limit", "5")
    assert str(event_id) in table and "task:ready" in table


def test_the_cli_rejects_bad_data_naming_the_workflow(
    stack: Stack, triggered_worker: Process
) -> None:
    key = f"task:cli-bad-{uuid.uuid4().hex[:8]}"

    with pytest.raises(RuntimeError, match=PREFIX):
        stack.roost("events", "push", key, "--data", '{"priority": "x"}')

    assert stored_events(stack, key) == 0


def test_registering_a_definition_with_a_bad_pattern_is_rejected_naming_it(
    api: httpx.Client,
) -> None:
    definition = {
        "name": f"t-trig-bad-{uuid.uuid4().hex[:8]}",
        "tasks": [{"name": "a"}],
        "on_events": ["task:*", "task ready"],
    }

    r = api.post("/api/v1/workflows", json=definition)

    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_definition"
    assert "'task ready'" in r.json()["error"]["message"]
