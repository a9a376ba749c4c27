"""A worker process's reports go to RabbitMQ in batches (roost._report_batcher): several
per message, once each, and in the order they were made; a result the broker never
takes is given up after the retry window, so that its task message goes back."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from harness import Stack
from roost._report_batcher import ReportBatcher
from roost._reports import AttemptReports, ReportUndelivered
from roost_core import broker
from roost_core import topology as topo
from roost_core.wire import TaskEmitted, TaskSucceeded, decode_report_batch


@pytest.fixture
def topology(stack: Stack) -> Iterator[topo.Topology]:
    topology = topo.Topology(f"t{uuid.uuid4().hex[:10]}")
    connection = broker.connect(stack.env["ROOST_BROKER_URL"])
    channel = connection.channel()
    topo.declare_core(channel, topology)
    yield topology
    for queue in (topology.scheduler_queue, topology.scheduler_dead_queue,
                  topology.ratelimiter_queue):  # fmt: skip
        channel.queue_delete(queue)
    channel.exchange_delete(topology.events_exchange)
    channel.exchange_delete(topology.control_exchange)
    connection.close()


def _line(task_run_id: str, n: int) -> TaskEmitted:
    common = {"run_id": "r", "task_run_id": task_run_id, "task": "t", "attempt": 1}
    return TaskEmitted(**common, worker_id="w", type="log", started_at=1.0, at=1.0 + n,
                       data=f"line {n}")  # fmt: skip


def _result(task_run_id: str) -> TaskSucceeded:
    common = {"run_id": "r", "task_run_id": task_run_id, "task": "t", "attempt": 1}
    return TaskSucceeded(**common, worker_id="w", started_at=1.0, finished_at=2.0,
                         output={"id": task_run_id})  # fmt: skip


def _drain(url: str, queue: str) -> list[bytes]:
    connection = broker.connect(url)
    channel = connection.channel()
    bodies: list[bytes] = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        assert method.routing_key == topo.TASK_REPORTS
        bodies.append(body)
    connection.close()
    return bodies


def test_reports_of_many_threads_arrive_once_each_in_order_several_per_message(
    stack: Stack, topology: topo.Topology
) -> None:
    url = stack.env["ROOST_BROKER_URL"]
    reports = AttemptReports(url, topology, lambda: "w")
    threads, lines, tasks = 8, 5, 12

    def work(thread: int) -> None:
        for k in range(tasks):
            task_run_id = f"{thread}-{k}"
            for n in range(lines):
                reports._batcher.submit(
                    _line(task_run_id, n).model_dump_json().encode(), wait=False
                )
            reports.result("task.succeeded", _result(task_run_id))  # waits for the confirm

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    bodies = _drain(url, topology.scheduler_queue)
    order: list[tuple[str, str]] = []  # (task run id, "line n" or "result")
    for body in bodies:
        results, emitted = decode_report_batch(body)
        # One message's reports come in the order they were made: a task's lines, then
        # its result (decode splits them; their times say the order within a task).
        order += [(e.task_run_id, str(e.data)) for e in emitted]
        order += [(r.task_run_id, "result") for r in results]
    total = threads * tasks * (lines + 1)
    assert len(order) == total == len(set(order)), "each report once"
    assert len(bodies) < total / 3, f"{len(bodies)} messages for {total} reports"
    # Every line of a task went out in a message no later than its result's.
    where = {item: i for i, body in enumerate(bodies) for item in _items(body)}
    for thread in range(threads):
        for k in range(tasks):
            task_run_id = f"{thread}-{k}"
            result_at = where[(task_run_id, "result")]
            assert all(where[(task_run_id, f"line {n}")] <= result_at for n in range(lines))


def _items(body: bytes) -> list[tuple[str, str]]:
    results, emitted = decode_report_batch(body)
    return [(e.task_run_id, str(e.data)) for e in emitted] + [
        (r.task_run_id, "result") for r in results
    ]


def test_a_result_the_broker_never_takes_is_given_up_after_the_retry_window(
    topology: topo.Topology,
) -> None:
    # Nothing listens on port 1: every try fails at once.
    batcher = ReportBatcher("amqp://guest:guest@127.0.0.1:1/%2F", topology, retry_seconds=1.0)
    reports = AttemptReports("unused", topology, lambda: "w", batcher)
    started = time.monotonic()
    with pytest.raises(ReportUndelivered, match="attempt x-1:1"):
        reports.result("task.succeeded", _result("x-1"))
    # Given up when the next pause would pass the window: not at once, and not late.
    assert 0.5 <= time.monotonic() - started < 10
    batcher.stop()
