"""The pieces of ``DurableContext.wait_for_event`` (roost._durable) that are not replay:
the event a wait returns, and the checks of its arguments, made at the call so that a bad
key or filter fails in the task, naming it, rather than leaving a wait no event can end.

A filter is a CEL expression (as rate-limit keys are, roost_core.expressions) over
``payload``, the pushed event's data: ``payload.pr == 7``. The worker only compiles it;
the engine evaluates it against each event pushed with the wait's key."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class EventCondition:
    """One event branch of ``ctx.wait_for_any``: the next event pushed with ``key`` whose
    data passes ``filter`` (CEL over ``payload``; None: any)."""

    key: str
    filter: str | None = None


class Fired(BaseModel):
    """What ended a ``ctx.wait_for_any``: the branch's ``name`` (``"sleep"`` for the
    timer), and, for an event branch, the event. The same on every replay."""

    model_config = ConfigDict(frozen=True)

    name: str
    event: WaitedEvent | None = None


# The name of wait_for_any's timer branch (sleep= or until=).
SLEEP_BRANCH = "sleep"


def checked_branches(events: Any) -> dict[str, EventCondition]:
    """wait_for_any's event branches by name (a bare string is a key with no filter),
    each checked as wait_for_event checks its key and filter; TypeError or ValueError
    naming the bad one."""
    if events is None:
        return {}
    if not isinstance(events, dict):
        raise TypeError(f"wait_for_any's events map branch names to conditions, not {events!r}")
    out: dict[str, EventCondition] = {}
    for name, condition in events.items():
        if not isinstance(name, str) or not name or name == SLEEP_BRANCH:
            raise ValueError(
                f"wait_for_any: a branch is named by a non-empty string other than "
                f"{SLEEP_BRANCH!r}, not {name!r}"
            )
        if isinstance(condition, str):
            condition = EventCondition(condition)
        if not isinstance(condition, EventCondition):
            raise TypeError(
                f"wait_for_any: branch {name!r} is an EventCondition or a key, not {condition!r}"
            )
        try:
            out[name] = EventCondition(checked_key(condition.key), checked_filter(condition.filter))
        except ValueError as exc:
            reason = str(exc).removeprefix("wait_for_event: ")
            raise ValueError(f"wait_for_any: branch {name!r}: {reason}") from None
    return out


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


def fired(result: Any) -> Fired:
    """The branch recorded as an any-of wait's result ({fired, event})."""
    return Fired(name=result["fired"], event=waited(result["event"]))
