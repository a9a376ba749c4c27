"""The pieces of ``DurableContext.wait_for_event`` (roost._durable) that are not replay:
the event a wait returns, and the checks of its arguments, made at the call so that a bad
key or filter fails in the task, naming it, rather than leaving a wait no event can end.

A filter is a CEL expression (as rate-limit keys are, roost_core.expressions) over
``payload``, the pushed event's data: ``payload.pr == 7``. The worker only compiles it;
the engine evaluates it against each event pushed with the wait's key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from roost_core import event_filters, triggers


class WaitedEvent(BaseModel):
    """The pushed event that ended a ``ctx.wait_for_event``: the same on the first run
    as on every replay (it is recorded in the task's journal)."""

    model_config = ConfigDict(frozen=True)

    id: str
    key: str
    data: Any = None  # what roost.events.push was given
    created_at: datetime  # when it was pushed

    @property
    def payload(self) -> Any:
        """``data``, by the name a filter reads it by."""
        return self.data


def checked_key(key: object) -> str:
    """``key`` if events can be pushed with it; ValueError naming it if not."""
    try:
        return triggers.check_event_key(key)
    except ValueError as exc:
        raise ValueError(f"wait_for_event: {exc}") from None


def checked_filter(expression: object) -> str | None:
    """``expression`` (None: every event of the key), once it compiles as CEL and reads
    no variable but ``payload`` (roost_core.event_filters, the rules the engine judges
    events by); TypeError or ValueError naming it otherwise."""
    if expression is None:
        return None
    if not isinstance(expression, str):
        raise TypeError(
            f"wait_for_event's filter is a CEL expression (a string), not {expression!r}"
        )
    try:
        event_filters.compile_filter(expression)
    except ValueError as exc:
        raise ValueError(f"wait_for_event: {exc}") from None
    return expression


def waited(result: Any) -> WaitedEvent:
    """The event recorded as a wait's result ({id, key, data, created_at})."""
    return WaitedEvent.model_validate(result)
