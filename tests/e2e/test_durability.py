"""Load and crashes: every run completes, every task is recorded exactly once."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import roost
from harness import Stack


def _wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_500_runs_across_two_worker_processes_and_two_schedulers_all_complete_exactly_once(
    stack: Stack, flows: ModuleType
) -> None:
    worker = stack.start_worker(
        "roost_testapps.flows:loader", processes=2, threads=8, name="loader"
    )
    second_scheduler = stack.spawn("scheduler-extra", "scheduler")
    try:
        flows.load.register()
        with ThreadPoolExecutor(8) as pool:
            refs = list(
                pool.map(lambda i: flows.load.run({"i": i}, wait_for_result=False), range(500))
            )
        ids = [r.id for r in refs]

        def all_final() -> bool:
            (n,) = stack.sql(
                "SELECT count(*) FROM runs WHERE id = ANY(%s::uuid[])"
                " AND status IN ('SUCCEEDED','FAILED','CANCELLED')",
                ids,
            )[0]
            return n == 500

        _wait_until(all_final, 180, "500 runs to finish")

        statuses = stack.sql(
            "SELECT status, count(*) FROM runs WHERE id = ANY(%s::uuid[]) GROUP BY status", ids
        )
        assert statuses == [("SUCCEEDED", 500)]
        # Each task of each run succeeded once: one task run, in its first attempt, and
        # no attempt recorded as anything else.
        per_task = stack.sql(
            "SELECT t.status, t.attempt, count(a.*) FROM task_runs t"
            " LEFT JOIN task_attempts a ON a.task_run_id = t.id"
            " WHERE t.run_id = ANY(%s::uuid[]) GROUP BY t.id, t.status, t.attempt",
            ids,
        )
        assert len(per_task) == 2000
        assert set(per_task) == {("SUCCEEDED", 1, 0)}
        sample = flows.roost.runs.get(ids[0])
        assert [len(t.attempts) for t in sample.tasks] == [1, 1, 1, 1]
        # Outputs travelled down each chain, and both worker processes did work.
        outputs = stack.sql(
            "SELECT (r.input->>'i')::int, (t.output->>'i')::int, t.output->>'pid' FROM runs r"
            " JOIN task_runs t ON t.run_id = r.id AND t.task_name = 'l4'"
            " WHERE r.id = ANY(%s::uuid[])",
            ids,
        )
        assert all(given == out for given, out, _ in outputs)
        assert len({pid for _, _, pid in outputs}) == 2
        (left,) = stack.sql("SELECT count(*) FROM outbox")[0]
        assert left == 0 or _outbox_drains(stack)
    finally:
        second_scheduler.stop()
        worker.stop()


def _outbox_drains(stack: Stack) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if stack.sql("SELECT count(*) FROM outbox")[0][0] == 0:
            return True
        time.sleep(0.2)
    return False


def test_a_worker_killed_mid_task_has_its_task_run_again_on_another_worker(
    stack: Stack, flows: ModuleType, tmp_path: Path
) -> None:
    first = stack.start_worker(
        "roost_testapps.flows:crasher", processes=1, threads=2, name="crasher-1"
    )
    second = None
    try:
        ref = flows.crash.run({"marker_dir": str(tmp_path), "seconds": 5}, wait_for_result=False)
        _wait_until(lambda: any(tmp_path.glob("*.started")), 30, "the task to start")
        (marker,) = tmp_path.glob("*.started")
        victim = int(marker.name.split(".")[0])

        # The first worker dies mid-task; RabbitMQ gives the attempt to the next one.
        os.kill(victim, signal.SIGKILL)
        second = stack.start_worker(
            "roost_testapps.flows:crasher", processes=1, threads=2, name="crasher-2"
        )

        result = ref.result(timeout=60)

        assert result["slow"]["pid"] != victim
        assert result["after_slow"] == {"after": result["slow"]["pid"]}
        started = sorted(int(p.name.split(".")[0]) for p in tmp_path.glob("*.started"))
        assert victim in started and result["slow"]["pid"] in started
        run = flows.roost.runs.get(ref.id)
        assert run.status == roost.RunStatus.SUCCEEDED
        slow = run.task("slow")
        assert slow.status == roost.TaskStatus.SUCCEEDED
        assert slow.worker_id and slow.worker_id.endswith(f":{result['slow']['pid']}")
        assert len(slow.attempts) == 1  # recorded once, though it ran twice
    finally:
        first.stop()
        if second is not None:
            second.stop()
