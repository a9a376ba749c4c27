"""The outbox's publisher against the real RabbitMQ: a batch arrives whole and in order;
what the broker cannot route is declared and sent again when it is a task queue's, and
an error otherwise, after which the publisher goes on working. The sweeper sends a
task message again only while no worker may have had it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import orjson
import pika
import pika.exceptions
import psycopg
import pytest

from harness import Stack
from roost_core.outbox import OutboxMessage, Publisher, sweep


@pytest.fixture
def amqp(stack: Stack) -> Iterator[tuple[Publisher, pika.adapters.BlockingConnection]]:
    url = stack.env["ROOST_BROKER_URL"]
    publisher = Publisher(url)
    connection = pika.BlockingConnection(pika.URLParameters(url))
    yield publisher, connection
    publisher.close()
    connection.close()


@pytest.fixture
def exchange(amqp: tuple[Publisher, pika.adapters.BlockingConnection]) -> Iterator[str]:
    """A topic exchange no queue is bound to, deleted afterwards."""
    name = f"pubx_{uuid.uuid4().hex[:10]}"
    channel = amqp[1].channel()
    channel.exchange_declare(name, exchange_type="topic", auto_delete=True)
    yield name
    channel.exchange_delete(name)


@pytest.fixture
def queue(amqp: tuple[Publisher, pika.adapters.BlockingConnection]) -> Iterator[str]:
    """A task queue's name, not declared yet (the publisher declares it); deleted after."""
    name = f"pub_{uuid.uuid4().hex[:10]}"
    yield name
    amqp[1].channel().queue_delete(name)


def _drain(connection: pika.adapters.BlockingConnection, queue: str) -> list[bytes]:
    channel = connection.channel()
    bodies: list[bytes] = []
    while True:
        _, _, body = channel.basic_get(queue, auto_ack=True)
        if body is None:
            return bodies
        bodies.append(body)


def test_a_batch_reaches_its_queues_in_order_and_a_broadcast_nobody_hears_is_no_error(
    amqp: tuple[Publisher, pika.adapters.BlockingConnection], queue: str, exchange: str
) -> None:
    publisher, connection = amqp
    batch = [OutboxMessage("", queue, f"m{i}".encode()) for i in range(50)]
    # A broadcast to an exchange no queue is bound to: dropped, as its sender meant.
    batch.insert(10, OutboxMessage(exchange, "events.appended", b"{}", mandatory=False))
    publisher.publish_batch(batch)
    publisher.publish_batch([OutboxMessage("", queue, b"after")])
    assert _drain(connection, queue) == [f"m{i}".encode() for i in range(50)] + [b"after"]


def test_a_task_queue_deleted_behind_the_publishers_back_is_declared_again(
    amqp: tuple[Publisher, pika.adapters.BlockingConnection], queue: str
) -> None:
    publisher, connection = amqp
    publisher.publish_batch([OutboxMessage("", queue, b"first")])
    assert _drain(connection, queue) == [b"first"]
    connection.channel().queue_delete(queue)  # the publisher still believes it declared it
    publisher.publish_batch([OutboxMessage("", queue, b"second")])
    assert _drain(connection, queue) == [b"second"]


def test_a_mandatory_message_nothing_can_route_fails_the_batch(
    amqp: tuple[Publisher, pika.adapters.BlockingConnection], queue: str, exchange: str
) -> None:
    publisher, connection = amqp
    with pytest.raises(pika.exceptions.UnroutableError):
        publisher.publish_batch([OutboxMessage(exchange, "nowhere", b"lost?")])
    # The publisher goes on working after the failed batch.
    publisher.publish_batch([OutboxMessage("", queue, b"next")])
    assert _drain(connection, queue) == [b"next"]


def _queued_first_tasks(stack: Stack, runs: int) -> list[str]:
    """The first tasks (QUEUED) of new runs of a two-task workflow nobody serves."""
    auth = {"Authorization": f"Bearer {stack.token}"}
    name = f"sweep-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "tasks": [{"name": "a", "parents": []}, {"name": "b", "parents": ["a"]}]}
    assert httpx.post(f"{stack.api_url}/api/v1/workflows", json=body, headers=auth).is_success
    firsts = []
    for _ in range(runs):
        r = httpx.post(f"{stack.api_url}/api/v1/workflows/{name}/runs", json={}, headers=auth)
        assert r.status_code == 201, r.text
        firsts.append(next(t["id"] for t in r.json()["tasks"] if t["name"] == "a"))
    return firsts


def test_the_sweeper_sends_again_only_task_messages_no_worker_has_had(
    stack: Stack, amqp: tuple[Publisher, pika.adapters.BlockingConnection], queue: str
) -> None:
    publisher, connection = amqp
    waiting, started = _queued_first_tasks(stack, 2)
    assert stack.sql("UPDATE task_runs SET status = 'RUNNING' WHERE id = %s RETURNING id", started)

    def task_message(task_run_id: str, attempt: int) -> bytes:
        return orjson.dumps({"message_id": f"{task_run_id}:{attempt}", "args": [{}]})

    # Rows a relay published and was killed before it deleted them.
    bodies = {
        "queued": task_message(waiting, 1),  # no worker may have had it: again
        "started": task_message(started, 1),  # a worker has it: not again
        "superseded": task_message(waiting, 0),  # an earlier attempt: not again
        "other": b'{"not": "a task message"}',  # not a task's: again, as always
    }
    ids = [
        row[0]
        for body in bodies.values()
        for row in stack.sql(
            "INSERT INTO outbox (exchange, routing_key, body, mandatory, created_at)"
            " VALUES ('', %s, %s, true, now() - interval '1 hour') RETURNING id",
            queue,
            body,
        )
    ]

    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        sweep(conn, publisher, older_than_s=60)

    # (The stack's own scheduler sweeps too: whichever claimed a row, the same goes out.)
    assert stack.sql("SELECT count(*) FROM outbox WHERE id = ANY(%s)", ids) == [(0,)]
    assert sorted(_drain(connection, queue)) == sorted([bodies["queued"], bodies["other"]])
