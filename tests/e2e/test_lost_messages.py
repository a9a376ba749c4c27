"""No task message is lost (issue 15): idle worker threads whose broker connections the
broker has closed still start and report their tasks, and a message that vanishes from
the broker anyway is sent again by the scheduler's safety net."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType

import httpx
import pika
import pytest

from harness import Process, Stack, free_port

HEARTBEAT = 2  # seconds: the broker closes a connection silent for about twice this


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def test_idle_threads_with_connections_the_broker_closed_run_every_next_task(
    stack: Stack, flows: ModuleType
) -> None:
    threads = 4
    worker = stack.start_worker(
        "roost_testapps.flows:napper",
        threads=threads,
        name="napper",
        extra_env={
            # Every connection of the worker (publishers included) beats every 2 s: a
            # thread idle for 8 s holds one the broker has closed.
            "ROOST_BROKER_URL": _with_query(
                stack.env["ROOST_BROKER_URL"], f"heartbeat={HEARTBEAT}"
            ),
            "ROOST_AMQP_HEARTBEAT_SECONDS": str(HEARTBEAT),
        },
    )
    try:
        # Every thread runs a task (each holds its thread for a second), then all idle.
        first = [flows.napping.run({"seconds": 1.0}, wait_for_result=False) for _ in range(threads)]
        used = {ref.result(timeout=30)["nap"]["thread"] for ref in first}
        assert len(used) == threads, f"the first wave ran on {len(used)} threads, not {threads}"
        time.sleep(4 * HEARTBEAT)

        started = time.monotonic()
        for _ in range(3):
            assert flows.napping.run({"seconds": 0}, timeout=15)["nap"]["thread"] in used
        wave = [flows.napping.run({"seconds": 1.0}, wait_for_result=False) for _ in range(threads)]
        again = {ref.result(timeout=30)["nap"]["thread"] for ref in wave}
        took = time.monotonic() - started
        assert again == used, "the second wave did not reach every thread"
        # Promptly: three short runs and a one-second wave, not Dramatiq's retry backoffs.
        assert took < 10, f"3 runs and a wave took {took:.1f} s after the idle time"

        log = worker.log.read_text(errors="replace")
        assert "closed by the broker; reconnecting" in log, (
            f"no connection went stale: the test proves nothing\n{worker.tail()}"
        )
        for bad in (
            "Retries exceeded",
            "Failed to process message",
            "could not report a start",
            "could not report an attempt",
        ):
            assert bad not in log, f"{bad!r} in the worker's log:\n{worker.tail(60)}"
    finally:
        stack.stop_one(worker)


@pytest.fixture
def fast_safety_net(stack: Stack) -> Iterator[tuple[Process, int]]:
    """A second scheduler replica whose safety net looks every second and suspects an
    attempt queued for 2 s (the default replica keeps its slower defaults)."""
    port = free_port()
    proc = stack.spawn(
        "scheduler-safety-net",
        "scheduler",
        extra_env={
            "ROOST_LOST_MESSAGE_CHECK_SECONDS": "1",
            "ROOST_LOST_MESSAGE_GRACE_SECONDS": "2",
            "ROOST_LOST_MESSAGE_CONFIRM_SECONDS": "1",
            "ROOST_SCHEDULER_METRICS_PORT": str(port),
        },
    )
    try:
        yield proc, port
    finally:
        stack.stop_one(proc)


def _queue(stack: Stack, name: str) -> tuple[pika.BlockingConnection, str]:
    connection = pika.BlockingConnection(pika.URLParameters(stack.env["ROOST_BROKER_URL"]))
    return connection, f"{stack.env['ROOST_NAMESPACE']}.work.{name}"


def _events(stack: Stack, run_id: str, type: str) -> int:
    (n,) = stack.sql("SELECT count(*) FROM events WHERE run_id = %s AND type = %s", run_id, type)[0]
    return int(n)  # type: ignore[call-overload]


def _redispatched_metric(port: int, workflow: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f'roost_tasks_redispatched_total{{workflow="{workflow}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_message_purged_from_its_queue_is_sent_again_and_a_held_one_is_not(
    stack: Stack, flows: ModuleType, fast_safety_net: tuple[Process, int]
) -> None:
    _, metrics_port = fast_safety_net
    flows.purged.register()  # the api declares its queue
    connection, queue = _queue(stack, "t-purged")
    try:
        # No worker serves t-purged yet: the message waits on the queue, and is purged.
        lost = flows.purged.run({"seconds": 0}, wait_for_result=False)
        deadline = time.monotonic() + 10
        channel = connection.channel()
        while channel.queue_declare(queue, passive=True).method.message_count < 1:
            assert time.monotonic() < deadline, "the run's message never reached its queue"
            time.sleep(0.05)
        assert channel.queue_purge(queue).method.message_count == 1
    finally:
        connection.close()

    # One thread: `busy` runs for 6 s while `waiting` sits delivered in the worker's
    # memory (Dramatiq prefetches) — QUEUED past the grace, but held, so never resent.
    worker = stack.start_worker("roost_testapps.flows:purged_worker", threads=1, name="purged")
    try:
        busy = flows.purged.run({"seconds": 6}, wait_for_result=False)
        time.sleep(0.3)
        waiting = flows.purged.run({"seconds": 0}, wait_for_result=False)
        for ref in (lost, busy, waiting):
            assert ref.result(timeout=60)["outlive"] == {"attempt": 1}
    finally:
        stack.stop_one(worker)

    assert _events(stack, lost.id, "task.redispatched") == 1
    assert _events(stack, busy.id, "task.redispatched") == 0
    assert _events(stack, waiting.id, "task.redispatched") == 0
    (ran,) = stack.sql(
        "SELECT count(*) FROM task_runs WHERE run_id = ANY(%s::uuid[]) AND status = 'SUCCEEDED'",
        [lost.id, busy.id, waiting.id],
    )[0]
    assert ran == 3
    assert _redispatched_metric(metrics_port, "t-purged") == 1.0
