"""Run ids, and what they say of a run not found (issue #17).

Runs the api creates in PostgreSQL have uuid4 ids. Runs it accepts into RabbitMQ
(``Prefer: respond-async``, roost_api.accept) have uuid7 ids, which carry the time
they were made: a reader that does not find such a run, made moments ago, waits for
the scheduler to create it rather than answer that it does not exist."""

from __future__ import annotations

import time
import uuid

import uuid6

#: How long after its id's time a run accepted but not yet created may still appear.
PENDING_WINDOW_SECONDS = 600.0
#: How long a read of such a run waits for it when it would not wait anyway:
#: normally its creation takes milliseconds.
ACCEPTED_GRACE_SECONDS = 2.0


def new_run_id() -> str:
    """A uuid7: ordered by time, and dated (:func:`accepted_at`)."""
    return str(uuid.UUID(int=uuid6.uuid7().int))


def accepted_at(run_id: str) -> float | None:
    """When an accepted run's id was made (seconds since the epoch), or None for an id
    that is no uuid7."""
    try:
        parsed = uuid.UUID(run_id)
    except ValueError:
        return None
    return (parsed.int >> 80) / 1000 if parsed.version == 7 else None


def may_appear(run_id: str) -> bool:
    """Whether a run of this id, not found, may still be created: it was accepted
    within :data:`PENDING_WINDOW_SECONDS`."""
    when = accepted_at(run_id)
    return when is not None and time.time() - when < PENDING_WINDOW_SECONDS
