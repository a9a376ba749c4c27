"""Names and arguments of everything Roost declares on RabbitMQ, all under one namespace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

# Routing keys of the reports workers send to the events exchange.
TASK_STARTED = "task.started"
TASK_SUCCEEDED = "task.succeeded"
TASK_FAILED = "task.failed"
TASK_WAITING = "task.waiting"  # a durable task suspended to wait (issue #18)
WORKER_HEARTBEAT = "worker.heartbeat"

# Routing keys of what a task emits while it runs (log lines, progress, stream chunks),
# written to the event log by the scheduler.
TASK_EMITTED = "task.emitted"

# Routing key of a batch of the above in one message (roost_core.wire.encode_report_batch):
# how a worker process sends its reports, so that one publisher confirm covers the
# results of every task that ended meanwhile (roost._report_batcher).
TASK_REPORTS = "task.reports"
# Routing key of the api's request that the scheduler end one task's active attempt
# CANCELLED (roost.runs.cancel_task; roost_core.wire.TaskCancelRequest).
TASK_CANCEL_REQUEST = "task.cancel_request"
# Routing key of a trigger the api accepted without writing it (issue #17): a run the
# scheduler creates, batched with whatever else arrived (roost_core.wire.RunAccepted).
RUN_ACCEPTED = "run.accepted"
SCHEDULER_BINDINGS = (
    TASK_STARTED,
    TASK_SUCCEEDED,
    TASK_FAILED,
    TASK_WAITING,
    WORKER_HEARTBEAT,
    TASK_EMITTED,
    TASK_REPORTS,
    TASK_CANCEL_REQUEST,
    RUN_ACCEPTED,
)

# Routing key of the broadcasts that tell every gateway replica which events were just
# appended to the durable event log.
EVENTS_APPENDED = "events.appended"

# Routing key of the broadcasts that tell every gateway replica which spans of runs were
# just stored (streamed as ``span`` events to each run's subscribers).
SPANS_STORED = "spans.stored"

# Routing key of the hints that wake the ratelimiter: tasks wait, or units were freed.
RATELIMITER_WAKE = "ratelimiter.wake"

# Routing key of control broadcasts to every worker process.
TASK_CANCEL = "task.cancel"

# Messages (span batches) the span queue holds before it drops the oldest.
SPANS_QUEUE_MAX_LENGTH = 10_000

# Task queues are RabbitMQ priority queues: a run's priority, 1 (low) to 3 (high), is its
# messages' AMQP priority (roost_core.engine.priority).
MAX_PRIORITY = 3

# A worker process's own queue is "<namespace>.worker@<worker id>" (worker ids are
# "name@host:pid"; no workflow name holds "@"), deleted once unused for 2 minutes.
WORKER_QUEUE_MARK = ".worker@"
WORKER_QUEUE_EXPIRES_MS = 120_000

# Dramatiq's default TTL of its dead-letter queues (dramatiq_dead_message_ttl).
DEAD_MESSAGE_TTL_MS = 86400000 * 7


@dataclass(frozen=True)
class Topology:
    """Every broker name Roost uses, derived from one namespace."""

    namespace: str

    @property
    def events_exchange(self) -> str:
        """Topic exchange for task reports and lifecycle events."""
        return f"{self.namespace}.events"

    @property
    def control_exchange(self) -> str:
        """Topic exchange for broadcasts to every worker process (cancellations)."""
        return f"{self.namespace}.control"

    @property
    def scheduler_queue(self) -> str:
        """Durable queue the scheduler replicas consume reports from."""
        return f"{self.namespace}.scheduler"

    @property
    def scheduler_dead_queue(self) -> str:
        """Where the scheduler dead-letters reports it can never apply."""
        return f"{self.namespace}.scheduler.dead"

    def gateway_queue(self, replica: str) -> str:
        """A gateway replica's own transient queue of appended events."""
        return f"{self.namespace}.gateway.{replica}"

    @property
    def spans_queue(self) -> str:
        """Queue of finished spans of runs, shipped by every process, stored by the
        scheduler replicas (bounded: spans are telemetry, never worth a backlog)."""
        return f"{self.namespace}.spans"

    @property
    def ratelimiter_queue(self) -> str:
        """Durable queue of wake-up hints for the ratelimiter replicas."""
        return f"{self.namespace}.ratelimiter"

    def task_queue(self, workflow: str) -> str:
        """Dramatiq queue that carries the task attempts of one workflow. (It was
        "<ns>.tasks.<workflow>" before priorities: RabbitMQ fixes a queue's x-max-priority
        when it is declared, so the priority queues took a new name; docs/placement.md.)"""
        return f"{self.namespace}.work.{workflow}"

    def worker_queue(self, worker_id: str) -> str:
        """A worker process's own queue (issue #21): the engine places a sticky or
        labelled task's attempt there. Workflow names cannot hold WORKER_QUEUE_MARK."""
        return f"{self.namespace}{WORKER_QUEUE_MARK}{worker_id}"

    def actor_name(self, workflow: str) -> str:
        """Name of the Dramatiq actor that runs a workflow's tasks on a worker."""
        return f"roost.{workflow}"


def is_worker_queue(queue_name: str) -> bool:
    """Whether ``queue_name`` (or its .DQ/.XQ) is a worker process's own queue."""
    return WORKER_QUEUE_MARK in queue_name


def worker_queue_expiry(queue_name: str) -> dict[str, Any]:
    """A worker process's own queues are deleted by RabbitMQ once unused (no consumer)
    for WORKER_QUEUE_EXPIRES_MS: a process that died leaves none behind. What it held
    is placed again by the engine (roost_core.engine.stranded) or the lost-message net."""
    return {"x-expires": WORKER_QUEUE_EXPIRES_MS} if is_worker_queue(queue_name) else {}


def task_queue_arguments(queue_name: str) -> dict[str, Any]:
    """The arguments Dramatiq's RabbitmqBroker declares a queue with.

    The api and scheduler declare task queues before any worker exists (so that nothing
    published to them is dropped); RabbitMQ refuses a redeclaration with different
    arguments, so these must equal Dramatiq's (a worker's own queue: with the expiry
    roost._worker_queue adds). A unit test holds them together.
    """
    return {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": f"{queue_name}.XQ",
        "x-max-priority": MAX_PRIORITY,
        **worker_queue_expiry(queue_name),
    }


def declare_core(channel: BlockingChannel, topology: Topology) -> None:
    """Declare the events exchange and the scheduler's queue with its bindings."""
    channel.exchange_declare(topology.events_exchange, exchange_type="topic", durable=True)
    channel.exchange_declare(topology.control_exchange, exchange_type="topic", durable=True)
    # Reports that can never apply (malformed) are dead-lettered here, for a human to see.
    channel.queue_declare(topology.scheduler_dead_queue, durable=True)
    channel.queue_declare(
        topology.scheduler_queue,
        durable=True,
        arguments={
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": topology.scheduler_dead_queue,
        },
    )
    for key in SCHEDULER_BINDINGS:
        channel.queue_bind(topology.scheduler_queue, topology.events_exchange, routing_key=key)
    # Wake-ups are hints (the ratelimiter also looks by itself): a short queue is enough,
    # and one left without a ratelimiter does not grow.
    channel.queue_declare(
        topology.ratelimiter_queue,
        durable=True,
        arguments={"x-max-length": 1000, "x-overflow": "drop-head"},
    )
    channel.queue_bind(
        topology.ratelimiter_queue, topology.events_exchange, routing_key=RATELIMITER_WAKE
    )
    # Finished spans: transient messages on a bounded queue, so a span store that falls
    # behind (or is not running) drops the oldest spans rather than holding memory.
    channel.queue_declare(
        topology.spans_queue,
        durable=True,
        arguments={"x-max-length": SPANS_QUEUE_MAX_LENGTH, "x-overflow": "drop-head"},
    )


def declare_task_queue(channel: BlockingChannel, queue_name: str) -> None:
    """Declare a workflow's task queue, its delay queue and its dead-letter queue,
    exactly as a Dramatiq worker would."""
    args = task_queue_arguments(queue_name)
    channel.queue_declare(queue_name, durable=True, arguments=args)
    channel.queue_declare(f"{queue_name}.DQ", durable=True, arguments=args)
    channel.queue_declare(
        f"{queue_name}.XQ",
        durable=True,
        arguments={"x-message-ttl": DEAD_MESSAGE_TTL_MS, **worker_queue_expiry(queue_name)},
    )
