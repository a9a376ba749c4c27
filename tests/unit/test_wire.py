"""The wire protocol stays compatible with stock Dramatiq."""

from __future__ import annotations

import json

import dramatiq
import dramatiq.brokers.stub
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.message import Message
from pydantic import ValidationError

from roost._worker_queue import RoostRabbitmqBroker
from roost_core.topology import MAX_PRIORITY, Topology, task_queue_arguments
from roost_core.wire import (
    TaskEmitted,
    TaskError,
    TaskFailed,
    TaskMessage,
    TaskSucceeded,
    decode_report,
    decode_report_batch,
    dramatiq_envelope,
    encode_report_batch,
)


def test_a_task_message_decodes_as_a_dramatiq_message() -> None:
    topology = Topology("ns")
    msg = TaskMessage(
        run_id="r",
        task_run_id="t",
        workflow="wf",
        task="a",
        attempt=2,
        input={"x": 1},
        parent_outputs={"p": [1, 2]},
    )
    body = dramatiq_envelope(topology.task_queue("wf"), topology.actor_name("wf"), msg)

    decoded = Message.decode(body)

    assert decoded.queue_name == "ns.work.wf"
    assert decoded.actor_name == "roost.wf"
    assert decoded.message_id == "t:2"
    assert TaskMessage.model_validate(decoded.args[0]) == msg


def test_task_queues_are_declared_with_the_workers_own_arguments() -> None:
    # As roost._worker builds its broker: priority queues, and own queues that expire.
    broker = RoostRabbitmqBroker(url="amqp://guest:guest@127.0.0.1:1/%2F", max_priority=3)
    queue = Topology("ns").task_queue("wf")
    assert task_queue_arguments(queue) == broker._build_queue_arguments(queue)
    assert task_queue_arguments(queue)["x-max-priority"] == MAX_PRIORITY == 3
    own = Topology("ns").worker_queue("w@host:12")
    assert task_queue_arguments(own) == broker._build_queue_arguments(own)
    assert task_queue_arguments(own)["x-expires"] == 120_000
    plain = RabbitmqBroker(url="amqp://guest:guest@127.0.0.1:1/%2F", max_priority=3)
    assert plain._build_queue_arguments(queue) == broker._build_queue_arguments(queue)


def test_task_queue_names_are_valid_dramatiq_queue_names() -> None:
    queue = Topology("my-team").task_queue("task-execution.v2")

    @dramatiq.actor(queue_name=queue, broker=dramatiq.brokers.stub.StubBroker())
    def probe() -> None: ...

    assert probe.queue_name == queue


def test_reports_round_trip_and_malformed_ones_are_refused() -> None:
    ok = TaskSucceeded(
        run_id="r",
        task_run_id="t",
        task="a",
        attempt=1,
        worker_id="w",
        started_at=1.0,
        finished_at=2.0,
        output={"v": 1},
    )
    failed = TaskFailed(
        run_id="r",
        task_run_id="t",
        task="a",
        attempt=1,
        worker_id="w",
        started_at=1.0,
        finished_at=2.0,
        error=TaskError(type="E", message="m"),
    )
    assert decode_report(ok.model_dump_json().encode()) == ok
    assert decode_report(failed.model_dump_json().encode()) == failed
    with pytest.raises(ValidationError):
        decode_report(b'{"kind": "succeeded"}')
    with pytest.raises(ValidationError):
        decode_report(b"not json")


def test_a_report_batch_keeps_each_kind_in_its_order_and_refuses_a_malformed_one() -> None:
    encode = encode_report_batch
    common = {"run_id": "r", "task": "t", "attempt": 1, "worker_id": "w", "started_at": 1.0}
    made = [
        TaskEmitted(**common, task_run_id="a", type="log", at=1.1, data="one"),
        TaskSucceeded(**common, task_run_id="a", finished_at=2.0, output=None),
        TaskEmitted(**common, task_run_id="b", type="log", at=1.2, data="two"),
        TaskSucceeded(**common, task_run_id="b", finished_at=2.0, output={"x": 1}),
    ]
    results, emitted = decode_report_batch(encode([m.model_dump_json().encode() for m in made]))
    assert [(r.task_run_id, r.output) for r in results] == [("a", None), ("b", {"x": 1})]
    assert [e.data for e in emitted] == ["one", "two"]
    with pytest.raises(ValidationError):
        decode_report_batch(encode([made[1].model_dump_json().encode(), b'{"kind": "odd"}']))


def test_a_deadline_line_must_carry_its_deadline() -> None:
    base = {
        "kind": "emitted",
        "type": "deadline",
        "run_id": "r",
        "task_run_id": "t",
        "task": "a",
        "attempt": 1,
        "worker_id": "w",
        "started_at": 1.0,
        "at": 2.0,
    }
    good = TaskEmitted.model_validate({**base, "data": {"deadline": 12.5, "seconds": 10}})
    assert good.data == {"deadline": 12.5, "seconds": 10}
    for data in (None, {"seconds": 10}, {"deadline": "soon"}, {"deadline": True}):
        with pytest.raises(ValidationError, match="deadline"):
            TaskEmitted.model_validate({**base, "data": data})
    # A batch holding a malformed one is refused whole (the scheduler dead-letters it).
    bad = json.dumps({**base, "data": {"seconds": 1}}).encode()
    with pytest.raises(ValidationError):
        decode_report_batch(encode_report_batch([bad]))
