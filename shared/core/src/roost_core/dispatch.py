"""How a ready task attempt becomes an outbox message for its workflow's Dramatiq queue.
Shared by the api (a run's root tasks) and the scheduler (children made ready)."""

from __future__ import annotations

from roost_core.outbox import OutboxMessage
from roost_core.topology import Topology
from roost_core.wire import TaskMessage, dramatiq_envelope


def task_attempt_message(topology: Topology, message: TaskMessage) -> OutboxMessage:
    """The outbox message that hands ``message`` to a worker."""
    queue = topology.task_queue(message.workflow)
    body = dramatiq_envelope(queue, topology.actor_name(message.workflow), message)
    return OutboxMessage(exchange="", routing_key=queue, body=body)
