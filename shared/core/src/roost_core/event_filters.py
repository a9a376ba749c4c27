"""The filters of durable tasks' event waits (``ctx.wait_for_event(key,
filter="payload.pr == 7")``): CEL expressions over ``payload``, the pushed event's data.
Pure: the SDK compiles a filter when the task waits, so a bad one fails there, naming
it; the scheduler judges each pushed event with it (roost_core.engine.event_waits)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from roost_core.expressions import compile_cel

VARIABLES = frozenset({"payload"})


@lru_cache(maxsize=1024)
def compile_filter(expression: str) -> Any:
    """The compiled program; ValueError naming the expression if it does not parse or
    uses a variable other than ``payload``."""
    return compile_cel(
        expression, "event filter", VARIABLES, "only `payload` (the event's data) is available"
    )


def passes(expression: str | None, data: Any) -> bool:
    """Whether an event with ``data`` passes the filter (no filter: every event). A
    filter that cannot be evaluated on this data (a missing field, a type mismatch) or
    gives anything but true does not pass: the wait goes on for another event."""
    if expression is None:
        return True
    try:
        return compile_filter(expression).execute({"payload": data}) is True
    except (KeyError, ValueError, RuntimeError, TypeError):
        return False
