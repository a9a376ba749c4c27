"""Cancelling runs (queued tasks never start, running ones stop) and replaying them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import roost
from harness import Process, Stack


@pytest.fixture(scope="module")
def controlled_worker(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    proc = stack.start_worker(
        "roost_testapps.flows:controlled", processes=1, threads=8, name="controlled"
    )
    yield proc
    proc.stop()


def _wait_for(paths: list[Path], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.exists() for p in paths):
            return
        time.sleep(0.05)
    raise AssertionError(f"never appeared: {[p.name for p in paths if not p.exists()]}")


def test_cancelling_a_run_stops_its_running_tasks_and_ends_every_task(
    flows: ModuleType, controlled_worker: Process, tmp_path: Path
) -> None:
    ref = flows.cancellable.run({"marker_dir": str(tmp_path)}, wait_for_result=False)
    _wait_for([tmp_path / f"{m}.started" for m in ("sync", "async", "coop")])

    cancelled = flows.roost.runs.cancel(ref.id)

    assert cancelled.status == roost.RunStatus.CANCELLED
    assert {t.name: t.status for t in cancelled.tasks} == {
        "long_sync": "CANCELLED",
        "long_async": "CANCELLED",
        "cooperative": "CANCELLED",
        "after_long": "CANCELLED",
    }
    with pytest.raises(roost.RunCancelledError):
        ref.result(timeout=10)
    # Sync code is interrupted, async code cancelled, cooperative code sees is_cancelled.
    _wait_for(
        [tmp_path / f"{m}" for m in ("sync.interrupted", "async.interrupted", "coop.noticed")],
        timeout=10,
    )
    time.sleep(0.5)
    assert not any(tmp_path.glob("*.finished"))
    assert not (tmp_path / "after.started").exists()
    run = flows.roost.runs.get(ref.id)
    assert run.status == roost.RunStatus.CANCELLED  # nothing reported afterwards changed it
    assert all(t.status == "CANCELLED" for t in run.tasks)
    assert [a.status for a in run.task("long_sync").attempts] == ["CANCELLED"]


def test_cancelling_an_ended_run_changes_nothing(
    flows: ModuleType, controlled_worker: Process, tmp_path: Path
) -> None:
    (tmp_path / "fixed").touch()
    ref = flows.replayable.run({"marker_dir": str(tmp_path)}, wait_for_result=False)
    ref.result(timeout=30)
    after = flows.roost.runs.cancel(ref.id)
    assert after.status == roost.RunStatus.SUCCEEDED


def test_a_queued_task_of_a_cancelled_run_never_starts_even_on_a_worker_started_later(
    stack: Stack, flows: ModuleType, tmp_path: Path
) -> None:
    ref = flows.queued_only.run({"marker_dir": str(tmp_path)}, wait_for_result=False)
    assert flows.roost.runs.cancel(ref.id).status == roost.RunStatus.CANCELLED

    worker = stack.start_worker(
        "roost_testapps.flows:late_worker", processes=1, threads=2, name="late"
    )
    try:
        # A second run proves the worker consumes that queue; the cancelled one never ran.
        (tmp_path / "ok").mkdir()  # before the run: the worker may start it at once
        ok = flows.queued_only.run({"marker_dir": str(tmp_path / "ok")}, wait_for_result=False)
        ok.result(timeout=30)
        assert (tmp_path / "ok" / "queued.started").exists()
        assert not (tmp_path / "queued.started").exists()
        assert flows.roost.runs.get(ref.id).status == roost.RunStatus.CANCELLED
    finally:
        worker.stop()


def test_replay_reruns_the_failed_task_and_its_descendants_and_keeps_succeeded_outputs(
    flows: ModuleType, controlled_worker: Process, tmp_path: Path
) -> None:
    with pytest.raises(roost.RunFailedError) as caught:
        flows.replayable.run({"marker_dir": str(tmp_path)}, timeout=30)
    run_id = caught.value.run.id
    first = flows.roost.runs.get(run_id)
    assert first.task("shaky").status == "FAILED"
    assert first.task("after_shaky").status == "CANCELLED"
    assert first.task("sibling").status == "SUCCEEDED"

    (tmp_path / "fixed").touch()
    replayed = flows.roost.runs.replay(run_id)
    assert replayed.status in (roost.RunStatus.RUNNING, roost.RunStatus.SUCCEEDED)
    result = roost.RunRef(flows.roost.runs, run_id, "t-replayable").result(timeout=30)

    assert result["shaky"]["attempt"] == 2  # attempt numbers go on
    assert result["shaky"]["saw"] == {"steady": True}
    assert result["after_shaky"] == {"after": 2}
    assert (tmp_path / "steady.count").read_text() == "1"  # succeeded tasks did not rerun
    final = flows.roost.runs.get(run_id)
    assert final.status == roost.RunStatus.SUCCEEDED
    assert [a.status for a in final.task("shaky").attempts] == ["FAILED", "SUCCEEDED"]
    assert final.task("steady").finished_at == first.task("steady").finished_at


def test_replaying_a_running_or_succeeded_run_is_refused(
    flows: ModuleType, controlled_worker: Process, tmp_path: Path
) -> None:
    (tmp_path / "fixed").touch()
    ref = flows.replayable.run({"marker_dir": str(tmp_path)}, wait_for_result=False)
    ref.result(timeout=30)
    with pytest.raises(roost.ConflictError, match="nothing to replay"):
        flows.roost.runs.replay(ref.id)


def test_roost_runs_cancel_and_replay_from_the_cli(
    stack: Stack, flows: ModuleType, tmp_path: Path
) -> None:
    # No worker serves t-queued-only now: the run waits on its queue until cancelled.
    ref = flows.queued_only.run({"marker_dir": str(tmp_path)}, wait_for_result=False)

    out = stack.roost("runs", "cancel", ref.id)

    assert "CANCELLED" in out and ref.id in out
    assert flows.roost.runs.get(ref.id).status == roost.RunStatus.CANCELLED
    again = stack.roost("runs", "replay", ref.id)
    assert ref.id in again and "RUNNING" in again
    assert flows.roost.runs.get(ref.id).task("should_never_start").status == "QUEUED"
    flows.roost.runs.cancel(ref.id)  # leave nothing for a later worker
