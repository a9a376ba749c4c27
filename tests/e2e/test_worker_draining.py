"""A worker asked to stop says so: draining while its running task finishes, stopped once
it has exited cleanly, with its application and SDK versions, in GET /api/v1/workers
and `roost workers list`. Real processes: `roost worker` with two Dramatiq processes.
``roost.workers.get`` reads one process by the id a task ran on."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from polling import poll

import roost
from harness import Process, Stack

VERSION = "app-7.3.1"


def _workers(stack: Stack) -> dict[str, dict[str, Any]]:
    """The drainer's processes as the api lists them, by worker id."""
    workers = stack.api_get("/api/v1/workers")["workers"]
    return {w["id"]: w for w in workers if w["name"] == "drainer"}


def _in_status(stack: Stack, worker_id: str, status: str) -> dict[str, Any] | None:
    w = _workers(stack).get(worker_id)
    return w if w is not None and w["status"] == status else None


def _table_row(stack: Stack, worker_id: str) -> str:
    """``worker_id``'s line in `roost workers list`, printed wide enough for one line."""
    done = subprocess.run(
        [sys.executable, "-m", "roost.cli", "workers", "list"],
        env={**stack.env, "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return next((line for line in done.stdout.splitlines() if worker_id in line), done.stdout)


def test_a_stopped_worker_drains_its_running_task_then_says_it_stopped(
    stack: Stack, flows: ModuleType, tmp_path: Path
) -> None:
    folder = tmp_path / "gate"
    folder.mkdir()  # before the run: its task writes into it
    proc = stack.start_worker(
        "roost_testapps.flows:drainer",
        processes=2,
        threads=2,
        name="drainer",
        # Fast heartbeats, to see them go on while draining; a grace period far longer
        # than the test needs, so the task is never cut short.
        extra_env={"ROOST_WORKER_VERSION": VERSION, "ROOST_HEARTBEAT_INTERVAL_SECONDS": "0.5"},
        extra_args=["--shutdown-grace", "120"],
    )
    try:
        ref = flows.gated.run({"folder": str(folder)}, wait_for_result=False)
        marker = poll(lambda: next(folder.glob("*.started"), None), 60, "the task to start")
        busy = marker.read_text()
        both = poll(
            lambda: (
                ws
                if len(ws := {k: w for k, w in _workers(stack).items() if w["status"] == "alive"})
                == 2
                else None
            ),
            60,
            "both worker processes to report alive",
        )
        assert busy in both
        (idle,) = set(both) - {busy}
        for w in both.values():
            assert w["version"] == VERSION
            assert w["sdk_version"] == importlib.metadata.version("roost")

        proc.popen.send_signal(signal.SIGTERM)

        # The busy process drains: it says so, and keeps heart-beating while its task
        # runs. The idle one has nothing to finish and stops at once.
        draining = poll(lambda: _in_status(stack, busy, "draining"), 60, "busy to drain")
        assert draining["running"] == 1 and draining["version"] == VERSION
        poll(lambda: _in_status(stack, idle, "stopped"), 60, "the idle process to stop")
        seen = datetime.fromisoformat(draining["last_heartbeat_at"])
        poll(
            lambda: (
                (w := _in_status(stack, busy, "draining"))
                and datetime.fromisoformat(w["last_heartbeat_at"]) > seen
            ),
            60,
            "a later heartbeat that still says draining",
        )
        row = _table_row(stack, busy)
        assert "draining" in row and VERSION in row, row
        assert proc.popen.poll() is None, "the worker exited before its task finished"

        # Released, the task succeeds on the draining process, which then stops.
        (folder / "release").write_text("")
        result = ref.result(timeout=60)
        assert result["until_released"] == {"worker_id": busy, "released": True}
        stopped = poll(lambda: _in_status(stack, busy, "stopped"), 60, "busy to stop")
        assert stopped["running"] == 0
        assert stopped["version"] == VERSION
        assert stopped["sdk_version"] == importlib.metadata.version("roost")
        assert proc.popen.wait(60) == 0

        listed = {w["id"]: w for w in json.loads(stack.roost("workers", "list", "--json"))}
        assert {listed[busy]["status"], listed[idle]["status"]} == {"stopped"}
        row = _table_row(stack, busy)
        assert "stopped" in row and VERSION in row, row
    finally:
        proc.stop()


def test_a_worker_run_in_process_drains_and_stops_the_same_way(
    stack: Stack, flows: ModuleType, tmp_path: Path
) -> None:
    # Worker.start(): one process, its own SIGTERM handler, Dramatiq's worker inside.
    folder = tmp_path / "gate"
    folder.mkdir()
    log = tmp_path / "in-process.log"
    popen = subprocess.Popen(
        [sys.executable, "-c", "from roost_testapps.flows import drainer; drainer.start()"],
        env={**stack.env, "ROOST_WORKER_VERSION": VERSION},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc = Process("in-process-drainer", popen, log)
    stack.processes.append(proc)
    try:
        ref = flows.gated.run({"folder": str(folder)}, wait_for_result=False)
        marker = poll(lambda: next(folder.glob("*.started"), None), 60, "the task to start")
        busy = marker.read_text()
        assert busy.endswith(f":{popen.pid}")
        poll(lambda: _in_status(stack, busy, "alive"), 60, "the worker to report alive")

        popen.send_signal(signal.SIGTERM)
        draining = poll(lambda: _in_status(stack, busy, "draining"), 60, "it to drain")
        assert draining["running"] == 1 and draining["version"] == VERSION
        assert popen.poll() is None, "the worker exited before its task finished"

        (folder / "release").write_text("")
        assert ref.result(timeout=60)["until_released"] == {"worker_id": busy, "released": True}
        poll(lambda: _in_status(stack, busy, "stopped"), 60, "it to stop")
        assert popen.wait(60) == 0, proc.tail()
    finally:
        proc.stop()
        stack.processes.remove(proc)


def test_roost_workers_get_reads_the_process_a_task_ran_on(
    flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.chain.run({"task_id": "bd-which-worker"}, wait_for_result=False)
    ref.result(timeout=60)
    ran_on = ref.get().task("commit").attempts[-1].worker_id  # name@host:pid

    worker = flows.roost.workers.get(ran_on)

    assert worker["id"] == ran_on and worker["name"] == "basic"
    assert worker["status"] == "alive" and "t-chain" in worker["workflows"]
    listed = next(w for w in flows.roost.workers.list() if w["id"] == ran_on)
    assert worker.keys() == listed.keys()  # an entry of the list, as it is there
    with pytest.raises(roost.NotFoundError):
        flows.roost.workers.get(f"basic@nowhere.invalid:{os.getpid()}")
