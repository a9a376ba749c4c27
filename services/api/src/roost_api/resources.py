"""What every endpoint of the api shares, made once per process by ``create_app`` and
kept in ``app.state``: the database pool, the token verifier, the outbox relay, the
broker declarer, the run waiters, the workflow-version cache, the trigger batcher and
the set of workflows live workers serve."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pika.exceptions
from starlette.requests import Request

from roost_api import store
from roost_api.accept import Acceptor
from roost_api.served import ServedWorkflows
from roost_api.settings import ApiSettings
from roost_api.trigger_batch import TriggerBatcher
from roost_api.waiters import RunWaiters
from roost_core import broker
from roost_core.auth import TokenVerifier
from roost_core.outbox import OutboxRelay
from roost_core.topology import Topology, declare_core, declare_task_queue


class Declarer:
    """Declares broker queues for newly registered workflows (pika is blocking and not
    thread-safe, so one connection behind a lock, used from worker threads)."""

    def __init__(self, url: str, topology: Topology) -> None:
        self._url = url
        self._topology = topology
        self._lock = threading.Lock()
        self._connection: Any = None

    def declare(self, workflow: str) -> None:
        with self._lock:
            for attempt in range(2):
                try:
                    if self._connection is None or not self._connection.is_open:
                        self._connection = broker.connect(self._url)
                    channel = self._connection.channel()
                    declare_core(channel, self._topology)
                    declare_task_queue(channel, self._topology.task_queue(workflow))
                    channel.close()
                    return
                except pika.exceptions.AMQPError:
                    self._connection = None
                    if attempt:
                        raise

    def ready_counts(self, workflows: list[str]) -> dict[str, int]:
        """Messages ready on each workflow's task queue (what KEDA scales workers on),
        asked of RabbitMQ with a passive declare; a queue that does not exist yet is
        left out."""
        with self._lock:
            for attempt in range(2):
                try:
                    return self._ready_counts(workflows)
                except pika.exceptions.AMQPConnectionError:  # StreamLostError included
                    # A connection the broker closed while the api was idle: once more.
                    self._connection = None
                    if attempt:
                        raise
        return {}

    def _ready_counts(self, workflows: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        if self._connection is None or not self._connection.is_open:
            self._connection = broker.connect(self._url)
        channel = self._connection.channel()
        try:
            for workflow in workflows:
                try:
                    ok = channel.queue_declare(self._topology.task_queue(workflow), passive=True)
                except pika.exceptions.ChannelClosedByBroker:
                    channel = self._connection.channel()  # 404: no such queue yet
                    continue
                counts[workflow] = int(ok.method.message_count)
        finally:
            if channel.is_open:
                channel.close()
        return counts

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._connection.is_open:
                self._connection.close()


@dataclass
class Resources:
    settings: ApiSettings
    topology: Topology
    pool: Any
    verifier: TokenVerifier
    relay: OutboxRelay
    declarer: Declarer
    waiters: RunWaiters
    versions: store.VersionCache
    triggers: TriggerBatcher
    acceptor: Acceptor
    served: ServedWorkflows


def resources(request: Request) -> Resources:
    """The process's shared resources, from the app serving ``request``."""
    found: Resources = request.app.state.roost
    return found
