"""A worker process's own queue (issue #21): where the engine places the attempts of
sticky runs and of tasks with desired labels that it chose this process for.

Dramatiq acknowledges a message through the consumer of the queue the message names,
and finds its actor by name, so a task message placed here names this queue and the
workflow's usual actor: no second actor is needed, only the queue declared (which starts
a consumer for it when the Dramatiq worker starts)."""

from __future__ import annotations

from typing import Any

import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.common import xq_name
from dramatiq.encoder import Encoder, MessageData
from dramatiq.errors import DecodeError

from roost_core import fastjson
from roost_core import topology as topo


class RoostRabbitmqBroker(RabbitmqBroker):
    """Dramatiq's RabbitMQ broker, declaring a worker process's own queues (and their
    delay and dead-letter queues) with an expiry, so that RabbitMQ deletes the queues of
    a process that died. Every other queue is declared exactly as Dramatiq does."""

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        arguments: dict[str, Any] = super()._build_queue_arguments(queue_name)  # type: ignore[no-untyped-call]
        arguments.update(topo.worker_queue_expiry(queue_name))
        return arguments

    def _declare_xq_queue(self, queue_name: str) -> Any:
        if not topo.is_worker_queue(queue_name):
            return super()._declare_xq_queue(queue_name)  # type: ignore[no-untyped-call]
        channel: pika.adapters.blocking_connection.BlockingChannel = self.channel
        return channel.queue_declare(
            queue=xq_name(queue_name),
            durable=True,
            arguments={
                "x-message-ttl": topo.DEAD_MESSAGE_TTL_MS,
                **topo.worker_queue_expiry(queue_name),
            },
        )


class FastJSONEncoder(Encoder):
    """Dramatiq's JSON message encoding, by orjson (``roost_core.fastjson``): the same
    documents, read and written in a fraction of the CPU (issue #17). Set for the worker
    process by ``Worker``; a message it cannot decode is Dramatiq's ``DecodeError``."""

    def encode(self, data: MessageData) -> bytes:
        return fastjson.dumpb(data)

    def decode(self, data: bytes) -> MessageData:
        try:
            decoded: MessageData = fastjson.loads(data)
        except fastjson.JSONDecodeError as exc:
            raise DecodeError(f"failed to decode message {data!r}", data, exc) from None  # type: ignore[no-untyped-call]
        return decoded
