"""Runs of real DAGs on real workers, through the public SDK."""

from __future__ import annotations

from datetime import datetime
from types import ModuleType

import pytest

import roost
from harness import Process, Stack


def test_a_linear_chain_runs_in_order_and_hands_each_output_to_its_child(
    flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.chain.run({"task_id": "bd-42"}, wait_for_result=False)
    assert isinstance(ref.id, str) and ref.id

    result = ref.result(timeout=60)

    assert list(result) == ["check_deps", "process", "verify", "commit"] or set(result) == {
        "check_deps",
        "process",
        "verify",
        "commit",
    }
    assert result["check_deps"]["deps"] == ["a", "b"]
    assert result["process"]["n"] == 2  # the async task read its parent's output
    assert result["verify"]["ok"] is True
    assert result["commit"] == {**result["commit"], "committed": True, "task_id": "bd-42"}
    times = [result[t]["t"] for t in ("check_deps", "process", "verify", "commit")]
    assert times == sorted(times)

    run = flows.roost.runs.get(ref.id)
    assert run.status == roost.RunStatus.SUCCEEDED
    assert [t.name for t in run.tasks] == ["check_deps", "process", "verify", "commit"]
    for task in run.tasks:
        assert task.status == roost.TaskStatus.SUCCEEDED
        assert task.attempt == 1 and len(task.attempts) == 1
        assert task.output == result[task.name]
        assert task.started_at and task.finished_at and task.queued_at
        assert task.queued_at <= task.started_at <= task.finished_at
        assert task.worker_id and task.worker_id.startswith("basic@")
    assert run.finished_at is not None and run.started_at is not None


def test_waiting_run_returns_outputs_by_task_name(flows: ModuleType, basic_worker: Process) -> None:
    result = flows.chain.run({"task_id": "bd-43"}, timeout=60)
    assert result["commit"]["task_id"] == "bd-43"


def test_a_diamonds_middle_tasks_run_in_parallel(flows: ModuleType, basic_worker: Process) -> None:
    result = flows.diamond.run({"seed": 5}, timeout=60)

    left, right = result["left"], result["right"]
    # Both middle tasks sleep 0.5 s: each began before the other ended.
    assert left["began"] < right["ended"] and right["began"] < left["ended"]
    assert result["join"] == {"sum": 5 * 2 + 5 * 3}


def test_a_failed_task_fails_the_run_and_its_descendants_never_start(
    flows: ModuleType, basic_worker: Process
) -> None:
    with pytest.raises(roost.RunFailedError) as caught:
        flows.failing.run({"task_id": "bd-9"}, timeout=60)

    assert "explode" in str(caught.value)
    assert caught.value.failed_tasks == ["explode"]
    run = caught.value.run
    tasks = {t.name: t for t in run.tasks}
    assert run.status == roost.RunStatus.FAILED
    assert tasks["explode"].status == roost.TaskStatus.FAILED
    assert tasks["explode"].error["type"] == "RuntimeError"
    assert tasks["explode"].error["message"] == "boom for bd-9"
    assert "Traceback" in tasks["explode"].error["traceback"]
    # The descendant never started; the independent branch ran to the end.
    assert tasks["after_explode"].status == roost.TaskStatus.CANCELLED
    assert tasks["after_explode"].started_at is None and tasks["after_explode"].attempts == []
    assert tasks["independent"].status == roost.TaskStatus.SUCCEEDED
    assert tasks["independent"].output == {"independent": True}
    assert run.error is not None and run.error["failed_tasks"][0]["task"] == "explode"


def test_input_model_is_validated_at_trigger_and_reaches_the_task_as_a_model(
    flows: ModuleType, basic_worker: Process
) -> None:
    result = flows.validated.run({"task_id": "bd-7", "priority": "3"}, timeout=60)
    assert result["echo"] == {"task_id": "bd-7", "priority": 3, "model": "BeadInput"}

    with pytest.raises(roost.InvalidInputError, match="task_id"):
        flows.validated.run({"priority": 2}, wait_for_result=False)


def test_the_api_rejects_bad_input_naming_the_field(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    import httpx

    flows.validated.register()
    r = httpx.post(
        f"{stack.api_url}/api/v1/workflows/t-validated/runs",
        headers={"Authorization": f"Bearer {stack.token}"},
        json={"input": {"task_id": "x", "priority": "high"}},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_input"
    assert "priority" in r.json()["error"]["message"]


def test_the_same_idempotency_key_returns_the_same_run(
    flows: ModuleType, basic_worker: Process
) -> None:
    first = flows.chain.run({"task_id": "bd-1"}, idempotency_key="bd-1-once", wait_for_result=False)
    second = flows.chain.run(
        {"task_id": "bd-1"}, idempotency_key="bd-1-once", wait_for_result=False
    )
    assert first.id == second.id
    assert first.result(timeout=60)["commit"]["task_id"] == "bd-1"
    runs, _ = flows.roost.runs.list(workflow="t-chain", limit=500)
    assert sum(1 for r in runs if r.id == first.id) == 1


def test_a_run_can_be_read_back_at_once(flows: ModuleType, basic_worker: Process) -> None:
    ref = flows.chain.run({"task_id": "bd-read"}, wait_for_result=False)
    run = flows.roost.runs.get(ref.id)  # no eventual-consistency 404
    assert run.id == ref.id and run.workflow == "t-chain"
    assert run.status in (
        roost.RunStatus.QUEUED,
        roost.RunStatus.RUNNING,
        roost.RunStatus.SUCCEEDED,
    )
    assert isinstance(run.created_at, datetime)
    ref.result(timeout=60)


def test_run_many_triggers_every_run_in_one_request_and_each_completes(
    flows: ModuleType, basic_worker: Process
) -> None:
    refs = flows.chain.run_many([{"task_id": f"bd-many-{i}"} for i in range(25)])

    assert len({r.id for r in refs}) == 25
    results = [r.result(timeout=60) for r in refs]
    assert [res["commit"]["task_id"] for res in results] == [f"bd-many-{i}" for i in range(25)]


def test_run_many_respects_idempotency_keys_even_within_one_request(
    flows: ModuleType, basic_worker: Process
) -> None:
    first = flows.chain.run_many(
        [{"task_id": "k1"}, {"task_id": "k2"}, {"task_id": "k1-again"}],
        idempotency_keys=["many-k1", "many-k2", "many-k1"],
    )
    again = flows.chain.run_many([{"task_id": "k2"}], idempotency_keys=["many-k2"])

    assert first[0].id == first[2].id and first[0].id != first[1].id
    assert again[0].id == first[1].id
    assert first[0].result(timeout=60)["commit"]["task_id"] == "k1"


def test_run_many_rejects_a_bad_input_naming_its_index_and_creates_nothing(
    flows: ModuleType, basic_worker: Process
) -> None:
    before, _ = flows.roost.runs.list(workflow="t-validated", limit=500)
    with pytest.raises(roost.InvalidInputError, match=r"inputs\[1\].*task_id"):
        flows.validated.run_many([{"task_id": "ok"}, {"priority": 1}])
    after, _ = flows.roost.runs.list(workflow="t-validated", limit=500)
    assert len(after) == len(before)


def test_the_bulk_endpoint_rejects_a_bad_input_naming_its_index(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    import httpx

    flows.validated.register()
    r = httpx.post(
        f"{stack.api_url}/api/v1/workflows/t-validated/runs/bulk",
        headers={"Authorization": f"Bearer {stack.token}"},
        json={"runs": [{"input": {"task_id": "a"}}, {"input": {"task_id": 5, "priority": "x"}}]},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_input"
    assert r.json()["error"]["message"].startswith("runs[1]:")
    assert "priority" in r.json()["error"]["message"]

    empty = httpx.post(
        f"{stack.api_url}/api/v1/workflows/t-validated/runs/bulk",
        headers={"Authorization": f"Bearer {stack.token}"},
        json={"runs": []},
    )
    assert empty.status_code == 400 and "runs" in empty.json()["error"]["message"]


def test_workers_are_listed_alive_with_their_workflows_and_slots(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    import json
    import time
    from importlib.metadata import version as roost_version

    import httpx

    deadline = time.monotonic() + 15
    mine: list[dict] = []
    while time.monotonic() < deadline and not mine:
        r = httpx.get(
            f"{stack.api_url}/api/v1/workers", headers={"Authorization": f"Bearer {stack.token}"}
        )
        assert r.status_code == 200
        mine = [w for w in r.json()["workers"] if w["name"] == "basic" and w["status"] == "alive"]
        time.sleep(0.2)
    assert mine, "the basic worker never appeared"
    (worker,) = mine
    assert worker["slots"] == 8 and worker["id"].startswith("basic@")
    assert {"t-chain", "t-diamond", "t-failing", "t-validated"} <= set(worker["workflows"])
    assert worker["version"] == "flows-1"  # roost.worker(..., version="flows-1")
    assert worker["sdk_version"] == roost_version("roost")

    listed = json.loads(stack.roost("workers", "list", "--json"))
    assert worker["id"] in {w["id"] for w in listed}
