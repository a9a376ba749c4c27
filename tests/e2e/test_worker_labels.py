"""Worker labels (issue #21, first slice): a worker declares them, its heartbeats carry
them, and GET /api/v1/workers(/{id}), ``roost.workers`` and `roost workers list` show
them; a task that calls ``set_labels`` in its process changes what the next heartbeat
says. Real processes: `roost worker roost_testapps.flows:labelled`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pytest
from polling import poll

from harness import Process, Stack

DECLARED = {"gpu": "a100", "memory_gb": 64}  # roost_testapps.flows.labelled's


def _table_row(stack: Stack, worker_id: str) -> str:
    """``worker_id``'s line in `roost workers list`, printed wide enough for one line."""
    done = subprocess.run(
        [sys.executable, "-m", "roost.cli", "workers", "list"],
        env={**stack.env, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return next((line for line in done.stdout.splitlines() if worker_id in line), done.stdout)


@pytest.fixture
def labelled(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    proc = stack.start_worker(
        "roost_testapps.flows:labelled",
        processes=1,
        threads=2,
        name="labelled",
        extra_env={"ROOST_HEARTBEAT_INTERVAL_SECONDS": "0.5"},
    )
    yield proc
    stack.stop_one(proc)


def test_a_workers_labels_are_shown_and_a_change_at_run_time_reaches_the_next_heartbeat(
    stack: Stack, flows: ModuleType, labelled: Process
) -> None:
    def alive() -> dict[str, Any] | None:
        workers = stack.api_get("/api/v1/workers")["workers"]
        return next(
            (w for w in workers if w["name"] == "labelled" and w["status"] == "alive"), None
        )

    listed = poll(alive, 20, "the labelled worker to report alive")
    worker_id = listed["id"]
    assert listed["labels"] == DECLARED
    one = stack.api_get(f"/api/v1/workers/{quote(worker_id, safe='')}")
    assert one["labels"] == DECLARED and isinstance(one["labels"]["memory_gb"], int)
    assert flows.roost.workers.get(worker_id)["labels"] == DECLARED
    row = _table_row(stack, worker_id)
    assert "gpu=a100 memory_gb=64" in row, row
    as_json = {w["id"]: w for w in json.loads(stack.roost("workers", "list", "--json"))}
    assert as_json[worker_id]["labels"] == DECLARED

    # A task changes its process's labels: the next heartbeat carries the new set whole.
    new = {"gpu": "h100", "region": "eu", "memory_gb": 80.5}
    out = flows.relabel.run({"labels": new}, timeout=20)["set_my_labels"]
    assert out == {"worker_id": worker_id, "labels": new}

    def relabelled() -> dict[str, Any] | None:
        w: dict[str, Any] = flows.roost.workers.get(worker_id)
        return w if w["labels"] == new else None

    seen = poll(relabelled, 10, "a heartbeat with the new labels")
    assert seen["status"] == "alive"
    row = _table_row(stack, worker_id)
    assert "gpu=h100 memory_gb=80.5 region=eu" in row, row

    # A bad label fails the task that set it, naming it; the labels stay as they were.
    bad = flows.relabel.run({"labels": {"gpu": True}}, wait_for_result=False)
    final = flows.roost.runs.wait(bad.id, timeout=20)
    assert final.status == "FAILED"
    error = final.task("set_my_labels").error or {}
    assert error.get("type") == "InvalidDefinitionError"
    assert "'gpu'" in error.get("message", ""), error
    time.sleep(1.0)  # two heartbeats' worth
    assert flows.roost.workers.get(worker_id)["labels"] == new
