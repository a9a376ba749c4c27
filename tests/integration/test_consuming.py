"""A consuming service whose consumer the broker cancels (its queue deleted or recovered,
as in a RabbitMQ restart under load), or whose channel the broker closes (an ack of a
delivery tag from a connection lost since), consumes again instead of idling forever."""

from __future__ import annotations

import threading
import uuid

import pika
import pytest

from harness import Stack
from roost_core import broker
from roost_core.errors import BrokerUnavailableError
from roost_core.service import consuming, keep_running, pump
from roost_core.topology import Topology


def test_a_consumer_the_broker_cancels_ends_the_session_so_it_is_opened_again(
    stack: Stack,
) -> None:
    topology = Topology(f"t{uuid.uuid4().hex[:10]}")
    url = stack.env["ROOST_BROKER_URL"]
    sessions: list[int] = []
    stopping = threading.Event()

    def consume() -> None:
        with consuming(
            stack.database_url,
            url,
            topology,
            queue=topology.scheduler_queue,
            prefetch=10,
            on_message=lambda *_: None,
        ) as (_, connection, _channel):
            sessions.append(1)
            if len(sessions) == 1:
                # The broker deletes the queue: it cancels its consumer.
                other = broker.connect(url)
                other.channel().queue_delete(topology.scheduler_queue)
                other.close()
            else:
                stopping.set()
            while not stopping.is_set():
                connection.process_data_events(time_limit=0.2)

    runner = threading.Thread(
        target=keep_running, args=(consume, stopping), kwargs={"name": "test"}, daemon=True
    )
    runner.start()
    runner.join(timeout=20)
    assert not runner.is_alive(), "the cancelled consumer went on idling"
    assert len(sessions) == 2


def test_the_cancel_is_a_broker_error_naming_the_queue(stack: Stack) -> None:
    topology = Topology(f"t{uuid.uuid4().hex[:10]}")
    url = stack.env["ROOST_BROKER_URL"]
    with consuming(
        stack.database_url,
        url,
        topology,
        queue=topology.ratelimiter_queue,
        prefetch=10,
        on_message=lambda *_: None,
    ) as (_, connection, _channel):
        other = pika.BlockingConnection(broker.parameters(url))
        other.channel().queue_delete(topology.ratelimiter_queue)
        other.close()
        with pytest.raises(BrokerUnavailableError, match=topology.ratelimiter_queue):
            for _ in range(50):
                connection.process_data_events(time_limit=0.1)


def test_a_channel_the_broker_closes_ends_the_session_so_it_is_opened_again(
    stack: Stack,
) -> None:
    topology = Topology(f"t{uuid.uuid4().hex[:10]}")
    sessions: list[int] = []
    stopping = threading.Event()

    def consume() -> None:
        with consuming(
            stack.database_url,
            stack.env["ROOST_BROKER_URL"],
            topology,
            queue=topology.scheduler_queue,
            prefetch=10,
            on_message=lambda *_: None,
        ) as (_, connection, channel):
            sessions.append(1)
            if len(sessions) == 1:
                # A tag delivered on a connection lost since: unknown on this channel,
                # which the broker closes (PRECONDITION_FAILED).
                channel.basic_ack(772)
            else:
                stopping.set()
            while not stopping.is_set():
                pump(connection, channel, 0.2)

    runner = threading.Thread(
        target=keep_running, args=(consume, stopping), kwargs={"name": "test"}, daemon=True
    )
    runner.start()
    runner.join(timeout=20)
    assert not runner.is_alive(), "the consumer went on idling on a closed channel"
    assert len(sessions) == 2
