"""Child runs awaited inside a durable task (issue #18): the spawn and the wait are
durable calls, so the parent holds no worker slot while its children run (its worker
has one slot, which the children need), spawns them once however often it replays, and
gets their outputs, or RunFailedError naming a failed child."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from harness import Process, Stack


@pytest.fixture(scope="module")
def nursery(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    """One slot, serving the durable parent and its children."""
    proc = stack.start_worker("roost_testapps.flows:nursery", processes=1, threads=1)
    yield proc
    proc.stop()


def test_a_durable_parent_waits_for_its_children_holding_no_slot(
    stack: Stack, flows: ModuleType, nursery: Process, tmp_path: Path
) -> None:
    marker = tmp_path / "marks"
    ref = flows.durable_parent.run({"marker": str(marker), "n": 20}, wait_for_result=False)
    out = ref.result(timeout=90)["fan_in"]

    assert out["sum"] == sum(range(20)) and out["extra"] == 1000
    assert marker.read_text().splitlines() == ["step"]  # replays did not run it again
    run = stack.api_get(f"/api/v1/runs/{ref.id}")
    # 20 children and the extra one, each spawned once across every replay.
    assert len(run["children"]) == 21
    assert {c["status"] for c in run["children"]} == {"SUCCEEDED"}
    assert sorted(c["id"] for c in run["children"] if c["key"] != "extra") == sorted(out["ids"])
    statuses = [a["status"] for a in run["tasks"][0]["attempts"]]
    assert statuses == ["WAITING", "WAITING", "SUCCEEDED"]  # the join, the extra, the end


def test_a_failed_child_raises_run_failed_in_the_durable_parent(
    stack: Stack, flows: ModuleType, nursery: Process, tmp_path: Path
) -> None:
    ref = flows.durable_parent.run(
        {"marker": str(tmp_path / "marks"), "n": 3, "failing": [1]}, wait_for_result=False
    )
    out = ref.result(timeout=60)["fan_in"]
    assert "failed in task(s) child_work" in out["failed"]
    assert "child 1 fails" in out["failed"]
    assert out["ids"][1] in out["failed"]
