"""Load and crashes: every run completes, every task is recorded exactly once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
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


def test_a_frozen_worker_loses_its_task_to_another_and_cannot_overwrite_it_on_waking(
    stack: Stack, flows: ModuleType, tmp_path: Path
) -> None:
    fast = {"ROOST_HEARTBEAT_INTERVAL_SECONDS": "0.5"}
    watcher = stack.spawn(
        "scheduler-liveness", "scheduler", extra_env={"ROOST_WORKER_HEARTBEAT_TIMEOUT_SECONDS": "3"}
    )
    first = stack.start_worker(
        "roost_testapps.flows:crasher", processes=1, threads=2, name="frozen-1", extra_env=fast
    )
    second = None
    victim = 0
    try:
        ref = flows.crash.run({"marker_dir": str(tmp_path), "seconds": 6}, wait_for_result=False)
        _wait_until(lambda: any(tmp_path.glob("*.started")), 30, "the task to start")
        (marker,) = tmp_path.glob("*.started")
        victim = int(marker.name.split(".")[0])
        _wait_until(
            lambda: flows.roost.runs.get(ref.id).task("slow").status == "RUNNING",
            10,
            "the task to be RUNNING",
        )
        second = stack.start_worker(
            "roost_testapps.flows:crasher", processes=1, threads=2, name="frozen-2", extra_env=fast
        )
        os.kill(victim, signal.SIGSTOP)
        frozen_at = time.monotonic()

        # Within the heartbeat timeout (3 s) plus a check (1 s), the attempt moves on.
        _wait_until(
            lambda: flows.roost.runs.get(ref.id).task("slow").attempt == 2,
            15,
            "a new attempt on another worker",
        )
        moved_after = time.monotonic() - frozen_at
        # Still frozen: the run completes on the other worker. (Had RabbitMQ already
        # pushed the new attempt into the frozen worker's prefetch, it takes it back once
        # that connection misses its AMQP heartbeats, ~10 s.)
        result = ref.result(timeout=40)
        os.kill(victim, signal.SIGCONT)  # wakes up mid-task; its late result must not count

        assert moved_after < 3 + 1 + 2, moved_after
        assert result["slow"]["pid"] != victim
        time.sleep(7)  # the woken worker finishes its stale attempt and reports it
        run = flows.roost.runs.get(ref.id)
        slow = run.task("slow")
        assert run.status == roost.RunStatus.SUCCEEDED
        assert slow.output == {"pid": result["slow"]["pid"]}
        assert [(a.attempt, a.status) for a in slow.attempts] == [(1, "FAILED"), (2, "SUCCEEDED")]
        assert slow.attempts[0].error is not None
        assert slow.attempts[0].error["type"] == "WorkerLost"
    finally:
        if victim:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGCONT)
        watcher.stop()
        first.stop()
        if second is not None:
            second.stop()


def test_sigterm_lets_running_tasks_finish_within_the_grace_period_and_hands_back_the_rest(
    stack: Stack, flows: ModuleType, tmp_path: Path
) -> None:
    # A short task finishes during the grace period, on the worker being stopped.
    short_dir, long_dir = tmp_path / "short", tmp_path / "long"
    short_dir.mkdir()
    long_dir.mkdir()
    first = stack.start_worker(
        "roost_testapps.flows:crasher",
        processes=1,
        threads=2,
        name="graceful-1",
        extra_args=["--shutdown-grace", "4"],
    )
    second = third = None
    try:
        short = flows.crash.run({"marker_dir": str(short_dir), "seconds": 1}, wait_for_result=False)
        _wait_until(lambda: any(short_dir.glob("*.started")), 30, "the short task to start")
        first.popen.send_signal(signal.SIGTERM)
        first.popen.wait(30)
        # `after_slow` is queued only once `slow` has finished, when the stopping worker
        # takes no more work (Dramatiq's idle thread may still grab it, or may not): the
        # next worker runs it. `slow` itself ran once, to the end, on the stopped worker.
        second = stack.start_worker(
            "roost_testapps.flows:crasher",
            processes=1,
            threads=2,
            name="graceful-2",
            extra_args=["--shutdown-grace", "1"],
        )
        (short_marker,) = short_dir.glob("*.started")
        assert short.result(timeout=30)["slow"]["pid"] == int(short_marker.name.split(".")[0])
        short_slow = flows.roost.runs.get(short.id).task("slow")
        assert [(a.attempt, a.status) for a in short_slow.attempts] == [(1, "SUCCEEDED")]

        # A long task outlives the grace period: it goes back and another worker runs it.
        long = flows.crash.run({"marker_dir": str(long_dir), "seconds": 4}, wait_for_result=False)
        _wait_until(lambda: any(long_dir.glob("*.started")), 30, "the long task to start")
        second.popen.send_signal(signal.SIGTERM)
        second.popen.wait(30)
        third = stack.start_worker(
            "roost_testapps.flows:crasher", processes=1, threads=2, name="graceful-3"
        )
        result = long.result(timeout=60)
        markers = sorted(long_dir.glob("*.started"), key=lambda p: p.stat().st_mtime)
        abandoned, finished = (int(p.name.split(".")[0]) for p in markers)
        assert result["slow"]["pid"] == finished != abandoned
        assert flows.roost.runs.get(long.id).status == roost.RunStatus.SUCCEEDED
    finally:
        first.stop()
        if second is not None:
            second.stop()
        if third is not None:
            third.stop()


def _unacked(stack: Stack, queue: str) -> int:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", stack.vhost, "name", "messages_unacknowledged"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == queue:
            return int(parts[1])
    raise AssertionError(f"queue {queue} not found in:\n{out}")


def test_a_long_task_acknowledges_its_message_early_and_still_runs_exactly_once(
    stack: Stack, flows: ModuleType, tmp_path: Path
) -> None:
    # RabbitMQ redelivers a message held unacknowledged past its consumer_timeout; a long
    # task hands durability to the engine first (a confirmed `started`), then acks.
    worker = stack.start_worker(
        "roost_testapps.flows:crasher",
        processes=1,
        threads=2,
        name="long-acker",
        extra_env={"ROOST_LONG_TASK_ACK_SECONDS": "1.0", "ROOST_HEARTBEAT_INTERVAL_SECONDS": "0.5"},
    )
    try:
        ref = flows.crash.run({"marker_dir": str(tmp_path), "seconds": 5}, wait_for_result=False)
        _wait_until(lambda: any(tmp_path.glob("*.started")), 30, "the task to start")
        queue = f"{stack.env['ROOST_NAMESPACE']}.work.t-crash"
        _wait_until(lambda: _unacked(stack, queue) == 0, 4, "the early acknowledgement")
        assert flows.roost.runs.get(ref.id).task("slow").status == "RUNNING"

        result = ref.result(timeout=30)
        assert len(list(tmp_path.glob("*.started"))) == 1  # ran once
        assert flows.roost.runs.get(ref.id).task("slow").output == result["slow"]
        assert "long task acknowledged early" in worker.log.read_text()
    finally:
        worker.stop()
