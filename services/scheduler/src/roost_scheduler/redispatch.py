"""The safety net for lost task messages.

A QUEUED attempt is a promise that its message is somewhere: in the outbox, on its
workflow's queue, or held by a worker process (running, or delivered and waiting for a
thread). Roost's workers never let Dramatiq drop a message (``roost._delivery``), but a
queue can still be purged or deleted by hand, a broker node can lose an unmirrored
queue, and a bug can always slip through. So every ``ROOST_LOST_MESSAGE_CHECK_SECONDS``
one thread of each scheduler replica looks for attempts whose message is gone and
dispatches them again, with the same attempt number (a result of the first message, if
it was not gone after all, is still recorded once).

An attempt is *suspected* when it has been QUEUED for over
``ROOST_LOST_MESSAGE_GRACE_SECONDS``, does not wait for the ratelimiter, is listed as
held by no live worker's latest heartbeat, and its queue has no ready message and no
outbox row waiting to go there (so it cannot be behind a backlog). It is *redispatched*
when it is still suspected at a later check, after every live worker has sent a
heartbeat at least ``ROOST_LOST_MESSAGE_CONFIRM_SECONDS`` after the suspicion: a message
that was in flight to a worker at the first look is in that worker's next heartbeat.
docs/reliability.md gives the bound this makes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pika
import pika.exceptions
import psycopg

from roost_core import broker, metrics, outbox
from roost_core.engine.redispatch import redispatch
from roost_core.engine.state import Definitions
from roost_core.topology import Topology
from roost_scheduler.periodic import Periodic
from roost_scheduler.settings import SchedulerSettings
from roost_scheduler.statements import SQL

logger = logging.getLogger(__name__)

_LIMIT = 500  # attempts looked at per check, oldest first

_UNHELD = SQL.unheld_attempts
_OLDEST_LIVE_BEAT = SQL.oldest_live_beat
_QUEUES_WITH_OUTBOX = SQL.queues_with_outbox_messages


@dataclass(frozen=True)
class Candidate:
    """A QUEUED attempt that no live worker holds."""

    task_run_id: str
    attempt: int
    queue: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.task_run_id, self.attempt)


def judge(
    candidates: list[Candidate],
    busy_queues: set[str],
    suspects: dict[tuple[str, int], datetime],
    now: datetime,
    oldest_live_beat: datetime | None,
    confirm: timedelta,
) -> tuple[list[Candidate], dict[tuple[str, int], datetime]]:
    """Which candidates are lost, and the suspicions to keep for the next check.

    A candidate on a busy queue (ready messages, or outbox rows bound for it) may be
    behind the backlog: no suspicion. A new one is suspected from ``now``. One suspected
    earlier is lost once every live worker has sent a heartbeat ``confirm`` after the
    suspicion (``oldest_live_beat`` is the oldest latest beat; None: no live worker)."""
    lost: list[Candidate] = []
    kept: dict[tuple[str, int], datetime] = {}
    for c in candidates:
        if c.queue in busy_queues:
            continue
        since = suspects.get(c.key)
        if since is None:
            kept[c.key] = now
        elif oldest_live_beat is None or oldest_live_beat >= since + confirm:
            lost.append(c)
        else:
            kept[c.key] = since
    return lost, kept


class LostMessages(Periodic):
    """The safety net's thread in each scheduler replica; several replicas may run it at
    once (a redispatch locks its runs and is guarded by attempt and status)."""

    name = "lost-messages"

    def __init__(self, settings: SchedulerSettings, relay: outbox.OutboxRelay) -> None:
        super().__init__(settings.lost_message_check_seconds)
        self._settings = settings
        self._relay = relay
        self._topology = Topology(settings.namespace)
        self._definitions = Definitions()
        self._suspects: dict[tuple[str, int], datetime] = {}
        self._connection: pika.BlockingConnection | None = None

    def _run(self) -> None:
        settings = self._settings
        params = {
            "grace": settings.lost_message_grace_seconds,
            "timeout": settings.worker_heartbeat_timeout_seconds,
            "limit": _LIMIT,
        }
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            rows = conn.execute(_UNHELD, params).fetchall()
            if not rows:
                self._suspects.clear()
                return
            now = rows[0][3]
            candidates = [Candidate(r[0], r[1], self._queue(r[2], r[4])) for r in rows]
            queues = sorted({c.queue for c in candidates})
            busy = self._busy_queues(conn, queues)
            beat = conn.execute(_OLDEST_LIVE_BEAT, params).fetchone()
            lost, self._suspects = judge(
                candidates,
                busy,
                self._suspects,
                now,
                beat[0] if beat else None,
                timedelta(seconds=settings.lost_message_confirm_seconds),
            )
            if not lost:
                return
            with conn.transaction():
                outcome = redispatch(conn, self._topology, self._definitions, lost)
        self._relay.submit(outcome.outbox_rows)
        metrics.count(outcome.events)
        for c in lost:
            self._suspects.pop(c.key, None)
        if outcome.applied:
            logger.warning(
                "task messages lost; attempts dispatched again",
                extra={
                    "action": "messages_redispatched",
                    "count": outcome.applied,
                    "attempts": [f"{c.task_run_id}:{c.attempt}" for c in lost][:20],
                },
            )

    def _queue(self, workflow: str, placed_on: str | None) -> str:
        """Where an attempt's message went: its workflow's queue, or the own queue of the
        worker process the engine placed it on (docs/placement.md)."""
        if placed_on is not None:
            return self._topology.worker_queue(placed_on)
        return self._topology.task_queue(workflow)

    def _busy_queues(self, conn: psycopg.Connection[Any], queues: list[str]) -> set[str]:
        """The queues with ready messages (asked of RabbitMQ) or outbox rows bound for
        them. A queue that does not exist holds nothing."""
        busy = {r[0] for r in conn.execute(_QUEUES_WITH_OUTBOX, {"queues": queues})}
        for attempt in range(2):
            try:
                if self._connection is None or not self._connection.is_open:
                    self._connection = broker.connect(self._settings.broker_url)
                channel = self._connection.channel()
                try:
                    for queue in queues:
                        try:
                            ok = channel.queue_declare(queue, passive=True)
                        except pika.exceptions.ChannelClosedByBroker:
                            channel = self._connection.channel()  # 404: no such queue
                            continue
                        if ok.method.message_count > 0:
                            busy.add(queue)
                finally:
                    if channel.is_open:
                        channel.close()
                return busy
            except (pika.exceptions.AMQPError, OSError):
                # A connection closed by the broker while this thread slept: once more.
                self._connection = None
                if attempt:
                    raise
        return busy
