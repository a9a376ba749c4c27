"""A worker process's heartbeats, as a Dramatiq middleware.

Every ``ROOST_HEARTBEAT_INTERVAL_SECONDS`` the process tells the scheduler it lives:
its workflows, slots, the attempts it runs and holds, its state, versions and labels
(as ``Worker.set_labels`` last left them in this process). A process that goes silent
(killed, frozen, cut off) loses its RUNNING attempts to other workers after the
scheduler's heartbeat timeout.

Dramatiq stops a worker (``roost worker`` on SIGTERM or SIGINT, in each of its
processes; ``Worker.start`` on the same signals) in one sequence: it emits
``before_worker_shutdown``, stops its worker threads (each finishes the task it runs
and takes no other), then its consumers (what they had prefetched goes back to the
queue), and emits ``after_worker_shutdown``. The first hook makes the process
*draining*, the second *stopped*; a heartbeat says so each time, at once.

Each tick also hands long tasks' durability to the engine (roost._delivery): a task
running past ``ROOST_LONG_TASK_ACK_SECONDS`` is reported started with a confirm, then
its message is acknowledged.
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dramatiq.middleware import Middleware

from roost._delivery import Delivery
from roost._reporter import Reporter
from roost._settings import ClientSettings
from roost_core import topology as topo
from roost_core.outbox import OutboxMessage
from roost_core.wire import LabelValue, WorkerHeartbeat, WorkerState

logger = logging.getLogger("roost.worker")

# How long a stopping process waits for RabbitMQ to take its last heartbeat ("stopped")
# before it exits anyway: long enough for a reconnect, short enough never to hold up a
# shutdown when the broker is gone (the engine then sees the process go silent: dead).
_LAST_BEAT_WAIT_SECONDS = 3.0


def _sdk_version() -> str | None:
    """The installed roost package's version, reported with every heartbeat."""
    try:
        return importlib.metadata.version("roost")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return None


SDK_VERSION = _sdk_version()


@dataclass(frozen=True)
class Identity:
    """What a worker process says of itself, besides its state."""

    worker_id: Callable[[], str]  # name@host:pid, read after the fork
    name: str
    workflows: list[str]
    slots: int
    version: str | None
    # Read at every heartbeat: set_labels may change them at run time.
    labels: Callable[[], dict[str, LabelValue]] = field(default=dict)


class Heartbeats(Middleware):
    """Sends the process's heartbeats from its reporter thread, and the changes of state
    at once; acknowledges long tasks early at each tick."""

    def __init__(
        self,
        identity: Identity,
        settings: ClientSettings,
        delivery: Delivery,
        running: Callable[[], dict[str, int]],
    ) -> None:
        self._identity = identity
        self._topology = topo.Topology(settings.namespace)
        # Its thread also sends the delayed `started` reports (roost._reporter).
        self.reporter = Reporter(
            settings.broker_url,
            settings.started_report_delay_seconds,
            heartbeat=self.beat,
            heartbeat_interval=settings.heartbeat_interval_seconds,
        )
        self._delivery = delivery
        self._running = running
        self._long_task_ack_seconds = settings.long_task_ack_seconds
        # Written by the stopping thread, read by the reporter's.
        self.state: WorkerState = "alive"

    def beat(self) -> OutboxMessage:
        """This process's heartbeat now (called on the reporter's thread)."""
        self._ack_long_tasks()
        me = self._identity
        beat = WorkerHeartbeat(
            worker_id=me.worker_id(),
            name=me.name,
            workflows=me.workflows,
            slots=me.slots,
            running=self._running(),
            held=self._delivery.held(),
            sent_at=time.time(),
            state=self.state,
            version=me.version,
            sdk_version=SDK_VERSION,
            labels=me.labels(),
        )
        return OutboxMessage(
            self._topology.events_exchange, topo.WORKER_HEARTBEAT, beat.model_dump_json().encode()
        )

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        """Dramatiq begins to stop this process: say so at once. Not waited for, since
        worker threads still take tasks until this hook returns; the final beat, which
        is waited for, follows it on the same thread, and the periodic beats meanwhile
        say draining too."""
        self.state = "draining"
        logger.info(
            "worker draining",
            extra={"action": "worker_draining", "worker": self._identity.worker_id()},
        )
        self.reporter.beat_now()

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        """Dramatiq has stopped this process's worker: send the last heartbeat and wait,
        boundedly, until RabbitMQ has it (the process exits right after this, and the
        reporter's thread with it); then stop heart-beating."""
        self.state = "stopped"
        if not self.reporter.beat_now(timeout=_LAST_BEAT_WAIT_SECONDS):
            logger.warning(
                "could not send the last heartbeat; the engine will see this worker go silent",
                extra={"action": "last_heartbeat_failed", "worker": self._identity.worker_id()},
            )
        self.reporter.stop()
        logger.info(
            "worker stopped",
            extra={"action": "worker_stopped", "worker": self._identity.worker_id()},
        )

    def _ack_long_tasks(self) -> None:
        """For every task running longer than long_task_ack_seconds, report it started
        with a confirm, then acknowledge its message. Each task is handled once."""
        for thread_id, message_id, started_report in self._delivery.long_running(
            self._long_task_ack_seconds
        ):
            try:
                self.reporter.publish_confirmed(started_report())
            except Exception:
                # Not acked then: RabbitMQ still holds the message, nothing is lost.
                logger.warning(
                    "could not report a long task; not acking it early",
                    exc_info=True,
                    extra={"action": "long_task_ack_failed"},
                )
                continue
            if self._delivery.ack_now(thread_id, message_id):
                logger.info(
                    "long task acknowledged early",
                    extra={"action": "long_task_acked", "message_id": message_id},
                )
