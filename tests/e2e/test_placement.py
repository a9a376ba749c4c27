"""Placement (issue #21), end to end with real processes: sticky runs stay on one worker
process (hard: fail when it dies; soft: move), and labelled tasks go only to workers
with their required labels, preferring the best-weighted, waiting (and saying why)
while none is live. Workers: `roost worker roost_testapps.placement:...`."""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pika
import psycopg
import pytest
from polling import poll

import roost
from harness import Process, Stack
from roost_core.engine.workers import record_heartbeats
from roost_core.topology import Topology
from roost_core.wire import WorkerHeartbeat

FAST = {"ROOST_HEARTBEAT_INTERVAL_SECONDS": "0.5"}


@pytest.fixture(scope="module")
def apps(stack: Stack, flows: ModuleType) -> ModuleType:
    """roost_testapps.placement, bound to the stack (``flows`` set the ROOST_* env)."""
    sys.modules.pop("roost_testapps.placement", None)
    return importlib.import_module("roost_testapps.placement")


@pytest.fixture(scope="module")
def liveness(stack: Stack) -> Iterator[Process]:
    """A second scheduler that finds a worker gone after 3 s of silence (the shared one
    waits 15 s): the dying-worker tests need not wait that long."""
    proc = stack.spawn(
        "scheduler-placement",
        "scheduler",
        extra_env={"ROOST_WORKER_HEARTBEAT_TIMEOUT_SECONDS": "3"},
    )
    yield proc
    stack.stop_one(proc)


@pytest.fixture(scope="module")
def sticky_workers(stack: Stack, apps: ModuleType, liveness: Process) -> Iterator[list[Process]]:
    procs = [
        stack.start_worker(
            "roost_testapps.placement:sticky",
            processes=1,
            threads=4,
            name=f"sticky-{i}",
            extra_env=FAST,
        )
        for i in range(3)
    ]
    _live(stack, "sticky", 3)
    yield procs
    for proc in procs:
        stack.stop_one(proc)


def _live(stack: Stack, name: str, count: int) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]] | None:
        workers = stack.api_get("/api/v1/workers")["workers"]
        alive = [w for w in workers if w["name"] == name and w["status"] == "alive"]
        return alive if len(alive) >= count else None

    return poll(found, 30, f"{count} live {name!r} workers")


def test_every_task_of_a_sticky_run_runs_in_the_process_that_ran_its_first(
    stack: Stack, apps: ModuleType, sticky_workers: list[Process]
) -> None:
    refs = [apps.sticky_hard.run({"n": i}, wait_for_result=False) for i in range(20)]
    used: Counter[str] = Counter()
    for ref in refs:
        out = ref.result(timeout=60)
        assert len(set(out.values())) == 1, out  # check, process, verify, commit: one process
        used[out["check"]] += 1
        run = apps.roost.runs.get(ref.id)
        verify = run.task("verify")
        assert verify.worker_id == out["check"]
        assert verify.attempts[-1].placement == {
            "worker_id": out["check"],
            "reason": f"sticky (hard) to {out['check']}",
        }
    assert len(used) >= 2, used  # the runs' first tasks went to the least loaded


def _kill_mid_process(apps: ModuleType, wf: Any, hold: Path) -> tuple[roost.RunRef, str, int]:
    """Start a run of ``wf`` whose ``process`` task holds; SIGKILL the worker process
    running it. Returns the run, that worker's id and pid."""
    ref = wf.run({"hold_dir": str(hold)}, wait_for_result=False)
    marker = poll(lambda: next(iter(hold.glob("process.*")), None), 30, "process to start")
    pid = int(marker.name.split(".")[1])
    worker_id = marker.read_text()
    # Killed once the engine knows it runs (else it was queued there when the process
    # died: placed again by the stranded pass, as tests/integration/test_placement_store
    # shows).
    poll(
        lambda: apps.roost.runs.get(ref.id).task("process").status == "RUNNING",
        10,
        "process to be RUNNING",
    )
    os.kill(pid, signal.SIGKILL)
    (hold / "release").write_text("go")  # any later attempt runs through
    return ref, worker_id, pid


def test_a_hard_sticky_run_fails_when_its_worker_process_dies(
    stack: Stack, apps: ModuleType, sticky_workers: list[Process], tmp_path: Path
) -> None:
    ref, dead, _ = _kill_mid_process(apps, apps.sticky_hard, tmp_path)
    final = apps.roost.runs.wait(ref.id, timeout=60)
    assert final.status == roost.RunStatus.FAILED
    process = final.task("process")
    lost, gone = process.attempts[0], process.attempts[-1]
    assert lost.error is not None and lost.error["type"] == "WorkerLost"
    assert gone.error is not None and gone.error["type"] == "StickyWorkerGone", gone.error
    assert f"sticky (hard) to worker {dead}, which is gone" in gone.error["message"]
    for name in ("verify", "commit"):  # never ran anywhere else
        assert final.task(name).status != roost.TaskStatus.SUCCEEDED
        assert final.task(name).worker_id is None


def test_a_soft_sticky_run_moves_to_another_worker_when_its_own_dies(
    stack: Stack, apps: ModuleType, sticky_workers: list[Process], tmp_path: Path
) -> None:
    ref, dead, _ = _kill_mid_process(apps, apps.sticky_soft, tmp_path)
    out = ref.result(timeout=60)
    assert out["check"] == dead
    moved = out["process"]
    assert moved != dead and out["verify"] == moved and out["commit"] == moved, out
    process = apps.roost.runs.get(ref.id).task("process")
    assert process.attempts[0].error is not None
    assert process.attempts[0].error["type"] == "WorkerLost"
    assert process.attempts[-1].placement == {
        "worker_id": moved,
        "reason": f"sticky (soft): worker {dead} gone, moved to {moved}",
    }


NODES = {
    "a": {"node": "a", "region": "eu", "memory_gb": 64},
    "b": {"node": "b", "region": "eu", "memory_gb": 16},
    "c": {"node": "c", "region": "us", "memory_gb": 128},
}


@pytest.fixture(scope="module")
def labelled_workers(stack: Stack, apps: ModuleType) -> Iterator[dict[str, str]]:
    """Three differently labelled worker processes; their ids by node."""
    procs = [
        stack.start_worker(
            "roost_testapps.placement:labelled",
            processes=1,
            threads=4,
            name=f"labelled-{node}",
            extra_env={**FAST, "TEST_WORKER_LABELS": json.dumps(labels)},
        )
        for node, labels in NODES.items()
    ]
    live = _live(stack, "labelled", 3)
    yield {w["labels"]["node"]: w["id"] for w in live}
    for proc in procs:
        stack.stop_one(proc)


def test_required_labels_hold_and_weights_are_followed(
    stack: Stack, apps: ModuleType, labelled_workers: dict[str, str]
) -> None:
    ids = {worker_id: node for node, worker_id in labelled_workers.items()}
    refs = apps.labels.run_many([{"i": i} for i in range(200)])
    ran = Counter(ids[ref.result(timeout=120)["in_eu"]] for ref in refs)
    assert ran["c"] == 0, ran  # region us: never, whatever its memory
    assert ran["a"] > ran["b"] > 0 or ran["a"] > 150, ran  # memory_gb >= 32 weighs 10
    task = apps.roost.runs.get(refs[0].id).task("in_eu")
    placement = task.attempts[-1].placement
    assert placement is not None and placement["worker_id"] == task.worker_id
    assert placement["reason"].startswith("labels: score "), placement


def test_a_task_no_worker_fits_waits_saying_why_and_a_relabel_lets_it_run(
    stack: Stack, apps: ModuleType, labelled_workers: dict[str, str]
) -> None:
    waiting = apps.needs_gpu.run({}, wait_for_result=False)

    def why() -> str | None:
        task = apps.roost.runs.get(waiting.id).task("on_h100")
        said = (task.placement or {}).get("waits", "")
        return said if task.status == "QUEUED" and "gpu" in said else None

    reason = poll(why, 20, "the task to say why it waits")
    assert reason.startswith("waits for a worker with gpu == 'h100': "), reason
    for worker_id in labelled_workers.values():
        assert f"{worker_id} lacks gpu == 'h100'" in reason

    # The run's own desired labels pick node b; the task there gives b an h100.
    out = apps.relabel.run(
        {"labels": {**NODES["b"], "gpu": "h100"}}, desired_labels={"node": "b"}, timeout=30
    )
    assert out["set_labels"]["worker_id"] == labelled_workers["b"]
    assert waiting.result(timeout=30)["on_h100"] == labelled_workers["b"]

    # Nobody has a TPU: its schedule timeout (2 s) ends it, saying what it waited for.
    never = apps.needs_tpu.run({}, wait_for_result=False)
    final = apps.roost.runs.wait(never.id, timeout=30)
    task = final.task("on_tpu")
    assert task.status == roost.TaskStatus.TIMED_OUT
    assert task.error is not None and task.error["type"] == "ScheduleTimeout"
    assert "waits for a worker with tpu == 'v5'" in task.error["message"], task.error


def test_an_attempt_placed_on_a_worker_that_stops_is_placed_again(
    stack: Stack, apps: ModuleType, labelled_workers: dict[str, str]
) -> None:
    # A worker process that exists only in its heartbeats: the one with node d.
    ghost = f"ghost@nowhere:{uuid.uuid4().hex[:6]}"
    with psycopg.connect(stack.database_url) as conn:
        record_heartbeats(conn, [_beat(ghost, "alive", 1.0)])
    ref = apps.on_d.run({}, wait_for_result=False)

    def placement() -> dict[str, str] | None:
        return apps.roost.runs.get(ref.id).task("on_node_d").placement

    placed = poll(lambda: (p := placement()) and "worker_id" in p and p, 20, "placement")
    assert placed["worker_id"] == ghost  # its message sits in the ghost's own queue

    with psycopg.connect(stack.database_url) as conn:
        record_heartbeats(conn, [_beat(ghost, "stopped", 2.0)])
    waits = poll(lambda: (p := placement()) and p.get("waits"), 20, "it to wait again")
    assert waits == "waits for a worker of workflow 'p-on-d' with node == 'd': none is live" or (
        waits.startswith("waits for a worker with node == 'd': ") and ghost not in waits
    ), waits

    real = stack.start_worker(
        "roost_testapps.placement:labelled",
        processes=1,
        threads=2,
        name="labelled-d",
        extra_env={**FAST, "TEST_WORKER_LABELS": json.dumps({"node": "d"})},
    )
    try:
        ran_on = ref.result(timeout=30)["on_node_d"]
        assert ran_on.startswith("labelled@") and ran_on != ghost
        task = apps.roost.runs.get(ref.id).task("on_node_d")
        assert task.placement == {"worker_id": ran_on, "reason": f"labels: score 0/0 on {ran_on}"}
        assert len(task.attempts) == 1  # placed three times, one attempt
    finally:
        stack.stop_one(real)


def _beat(worker_id: str, state: str, sent_at: float) -> WorkerHeartbeat:
    return WorkerHeartbeat.model_validate(
        {
            "worker_id": worker_id,
            "name": "ghost",
            "workflows": ["p-on-d"],
            "slots": 2,
            "sent_at": sent_at,
            "state": state,
            "labels": {"node": "d"},
        }
    )


def test_queued_runs_start_in_priority_order_and_the_low_ones_still_finish(
    stack: Stack, apps: ModuleType, tmp_path: Path
) -> None:
    # One slot, and a process that takes no message beyond the one it runs.
    worker = stack.start_worker(
        "roost_testapps.placement:prio_worker",
        processes=1,
        threads=1,
        name="prio",
        extra_env={"dramatiq_queue_prefetch": "1", "ROOST_LONG_TASK_ACK_SECONDS": "600"},
    )
    try:
        blocker = apps.prio.run({"hold_dir": str(tmp_path)}, wait_for_result=False)
        poll(lambda: any(tmp_path.glob("blocker.*")), 30, "the blocker to hold the slot")
        priorities = [1, 3, 2] * 10
        random.Random(21).shuffle(priorities)
        refs = [apps.prio.run({"p": p}, priority=p, wait_for_result=False) for p in priorities]
        assert {apps.roost.runs.get(r.id).priority for r in refs} == {1, 2, 3}
        poll(
            lambda: _ready_in_queue(stack, "p-priority") >= 30,
            20,
            "the 30 runs' messages on the queue",
        )
        (tmp_path / "release").write_text("go")
        outs = [r.result(timeout=60)["record_start"] for r in refs]  # the low ones finish too
        blocker.result(timeout=30)
        started = [o["priority"] for o in sorted(outs, key=lambda o: o["start"])]
        assert started == sorted(priorities, reverse=True), started
    finally:
        stack.stop_one(worker)


def test_an_aged_low_priority_attempt_keeps_new_high_ones_behind_it(
    stack: Stack, apps: ModuleType
) -> None:
    low = apps.unserved.run({}, priority=1, wait_for_result=False)
    before = apps.unserved.run({}, priority=3, wait_for_result=False)
    poll(lambda: _ready_in_queue(stack, "p-unserved") >= 2, 20, "two messages queued")
    with psycopg.connect(stack.database_url, autocommit=True) as conn:  # it waited 2 min
        conn.execute(
            "UPDATE task_runs SET queued_at = now() - interval '2 minutes' WHERE run_id = %s",
            (low.id,),
        )
    after = apps.unserved.run({}, priority=3, wait_for_result=False)
    poll(lambda: _ready_in_queue(stack, "p-unserved") >= 3, 20, "the third message queued")
    sent = _queued_priorities(stack, "p-unserved")
    # A bulk trigger's runs carry their priority and labels too.
    [bulk] = apps.unserved.run_many([{}], priority=2, desired_labels={"zone": "z9"})
    try:
        assert sent[low.id] == 1
        assert sent[before.id] == 3  # sent before the low one had aged
        assert sent[after.id] == 1  # no higher than the aged one: it goes after it
        assert apps.roost.runs.get(bulk.id).priority == 2
        waits = poll(
            lambda: (apps.roost.runs.get(bulk.id).task("never_runs").placement or {}).get("waits"),
            20,
            "the bulk run's task to wait for a zone z9 worker",
        )
        assert "zone == 'z9'" in waits, waits
    finally:
        for ref in (low, before, after, bulk):
            apps.roost.runs.cancel(ref.id)


def _ready_in_queue(stack: Stack, workflow: str) -> int:
    """Messages ready on ``workflow``'s queue (RabbitMQ's count)."""
    queue = Topology(stack.env["ROOST_NAMESPACE"]).task_queue(workflow)
    connection = pika.BlockingConnection(pika.URLParameters(stack.env["ROOST_BROKER_URL"]))
    try:
        ok = connection.channel().queue_declare(queue, passive=True)
        return int(ok.method.message_count)
    finally:
        connection.close()


def _queued_priorities(stack: Stack, workflow: str) -> dict[str, int]:
    """The AMQP priority of each run's message on ``workflow``'s queue, by run id (read
    without acknowledging: closing the connection puts them back)."""
    queue = Topology(stack.env["ROOST_NAMESPACE"]).task_queue(workflow)
    connection = pika.BlockingConnection(pika.URLParameters(stack.env["ROOST_BROKER_URL"]))
    found: dict[str, int] = {}
    try:
        channel = connection.channel()
        while True:
            method, props, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return found
            found[json.loads(body)["args"][0]["run_id"]] = props.priority
    finally:
        connection.close()
