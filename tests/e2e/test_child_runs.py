"""Child runs (issue #18): runs triggered inside a task are linked to it (listed by
parent, shown both ways), idempotent by key (a parent that fails after spawning and
retries spawns none twice), take the parent run's metadata, and are cancelled with their
parent run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest

from harness import Process, Stack


@pytest.fixture(scope="module")
def family(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    proc = stack.start_worker("roost_testapps.flows:family", processes=1, threads=8)
    yield proc
    proc.stop()


def _children(stack: Stack, parent_id: str) -> list[dict[str, Any]]:
    page = stack.api_get("/api/v1/runs", parent_run_id=parent_id, limit=500)
    return list(page["runs"])


def test_a_parent_fans_out_a_hundred_children_and_joins_their_outputs(
    stack: Stack, flows: ModuleType, family: Process
) -> None:
    ref = flows.parent_flow.run(
        {"n": 100, "wait": True}, wait_for_result=False, metadata={"team": "ops"}
    )
    out = ref.result(timeout=120)["fan_out"]
    assert out["sum"] == sum(range(100))
    # Each child got its parent run's metadata, as it set none of its own.
    assert all(m == {"team": "ops"} for m in out["metas"])

    listed = _children(stack, ref.id)
    assert sorted(r["id"] for r in listed) == sorted(out["ids"])
    run = stack.api_get(f"/api/v1/runs/{ref.id}")
    assert run["parent"] is None
    assert len(run["children"]) == 100
    assert {(c["task"], c["workflow"], c["status"]) for c in run["children"]} == {
        ("fan_out", "t-child", "SUCCEEDED")
    }
    # In the order the parent triggered them (one run_many: one created_at for all).
    assert [int(c["key"]) for c in run["children"]] == list(range(100))
    assert run["children_by_status"] == {"SUCCEEDED": 100}
    child = flows.roost.runs.get(out["ids"][7])
    assert child.parent is not None
    assert (child.parent.run_id, child.parent.task, child.parent.workflow) == (
        ref.id,
        "fan_out",
        "t-parent",
    )
    summaries, _ = flows.roost.runs.list(parent_run_id=ref.id, limit=500)
    assert len(summaries) == 100


def test_a_parent_that_fails_after_spawning_and_retries_spawns_none_twice(
    stack: Stack, flows: ModuleType, family: Process
) -> None:
    ref = flows.parent_flow.run({"n": 5, "fail_first": True}, wait_for_result=False)
    out = ref.result(timeout=60)["fan_out"]
    run = stack.api_get(f"/api/v1/runs/{ref.id}")
    assert [a["status"] for a in run["tasks"][0]["attempts"]] == ["FAILED", "SUCCEEDED"]
    listed = _children(stack, ref.id)
    assert len(listed) == 5  # the retry got the same five runs back
    assert sorted(r["id"] for r in listed) == sorted(out["ids"])


def test_cancelling_a_parent_run_cancels_its_running_children(
    stack: Stack, flows: ModuleType, family: Process
) -> None:
    ref = flows.parent_flow.run({"n": 3, "sleep": 60, "wait": True}, wait_for_result=False)
    deadline = time.monotonic() + 30
    while len(_children(stack, ref.id)) < 3 or any(
        r["status"] != "RUNNING" for r in _children(stack, ref.id)
    ):
        assert time.monotonic() < deadline, _children(stack, ref.id)
        time.sleep(0.1)

    resp = httpx.post(
        f"{stack.api_url}/api/v1/runs/{ref.id}/cancel",
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    children = _children(stack, ref.id)
    assert {r["status"] for r in children} == {"CANCELLED"}
    child = stack.api_get(f"/api/v1/runs/{children[0]['id']}")
    assert f"its parent run {ref.id} was cancelled" in child["error"]["message"]
    # Their workers were told to stop: no child task is left running.
    deadline = time.monotonic() + 20
    while any(
        t["status"] == "RUNNING"
        for c in children
        for t in stack.api_get(f"/api/v1/runs/{c['id']}")["tasks"]
    ):
        assert time.monotonic() < deadline, "a cancelled child's task kept running"
        time.sleep(0.1)
