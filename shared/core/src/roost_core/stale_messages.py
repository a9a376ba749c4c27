"""Task messages the outbox sweeper need not send again (issue #17).

A relay deletes the rows it published a moment later, in one statement for many
(``OutboxRelay.DELETE_DELAY_SECONDS``): a process killed in between leaves rows it did
publish, and the sweeper sends them again. For most messages a duplicate changes
nothing. A task message is different: a worker that receives one runs the task's
function again, side effects and all, although the engine then ignores what it reports
(a durable task's step, meant to run once, ran twice in the fault suite). So a task
message goes again only while its attempt is still QUEUED, that is while no worker may
have had it; one whose attempt has started, waits, ended or was superseded is dropped.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import psycopg

from roost_core.queries import SQL
from roost_core.statuses import TaskStatus

_QUEUED_ATTEMPTS = SQL.queued_attempts

Attempt = tuple[str, int]


def attempt_of(exchange: str, body: bytes) -> Attempt | None:
    """The (task run id, attempt) of a task message (a Dramatiq message, published to the
    default exchange, whose message_id is ``<task run id>:<attempt>``); None for any
    other message, or one whose id does not say."""
    if exchange != "":
        return None
    try:
        message_id = orjson.loads(body).get("message_id", "")
        task_run_id, attempt = message_id.split(":")
        return str(uuid.UUID(task_run_id)), int(attempt)
    except (ValueError, TypeError, AttributeError):
        return None


def stale(conn: psycopg.Connection[Any], attempts: list[Attempt]) -> set[Attempt]:
    """Of ``attempts``, those no longer QUEUED in that attempt: their messages served."""
    if not attempts:
        return set()
    rows = conn.execute(
        _QUEUED_ATTEMPTS,
        {
            "task_run_ids": [a[0] for a in attempts],
            "attempts": [a[1] for a in attempts],
            "queued": TaskStatus.QUEUED,
        },
    ).fetchall()
    queued = {(str(r[0]), r[1]) for r in rows}
    return {a for a in attempts if a not in queued}
