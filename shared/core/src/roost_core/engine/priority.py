"""Run priority (issue #21): a run's tasks reach their queue with the run's priority, 1
(low, the default) to 3 (high), as their AMQP priority; RabbitMQ's priority queues hand
higher ones to workers first.

Strict priority alone would starve low runs under a steady flow of higher ones, so the
engine ages them: while an attempt of a workflow's shared queue has waited there longer
than AGING_SECONDS, that queue's new messages are sent no higher than that attempt's
priority. They then queue behind it (RabbitMQ is FIFO within a priority), so an attempt
waits at most about AGING_SECONDS plus the time workers take to clear what higher
priority work was already queued when it aged. Nothing is re-sent: aging changes only
what comes next. (A worker process's own queue, docs/placement.md, is not aged.)
"""

from __future__ import annotations

from collections.abc import Iterable

from roost_core.engine.plan import Plan, Statement
from roost_core.queries import SQL

LOW, DEFAULT, HIGH = 1, 1, 3
AGING_SECONDS = 60.0

_AGED = SQL.aged_priorities


def effective(priority: int, floor: int | None) -> int:
    """The AMQP priority to send an attempt of a run of ``priority`` with, when the
    lowest priority among its queue's aged attempts is ``floor`` (None: none aged)."""
    return priority if floor is None else min(priority, floor)


def aged_floors(
    workflows: Iterable[str], aging_seconds: float = AGING_SECONDS
) -> Plan[dict[str, int]]:
    """Of these workflows' shared queues, the lowest priority of an attempt waiting there
    longer than ``aging_seconds``, by workflow (none aged: absent)."""
    names = sorted(set(workflows))
    if not names:
        return {}
    rows = yield Statement(_AGED, {"workflows": names, "aging": aging_seconds})
    return {name: int(floor) for name, floor in rows}
