"""The filters of durable tasks' event waits (``ctx.wait_for_event(key,
filter="payload.pr == 7")``): CEL expressions over ``payload``, the pushed event's data.
Pure: the SDK compiles a filter when the task waits, so a bad one fails there, naming
it; the scheduler judges each pushed event with it (roost_core.engine.event_waits)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cel

VARIABLES = frozenset({"payload"})


@lru_cache(maxsize=1024)
def compile_filter(expression: str) -> Any:
    """The compiled program; ValueError naming the expression if it does not parse or
    uses a variable other than ``payload``."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError(f"event filter {expression!r} is empty")
    try:
        program = cel.compile(expression)
    except (ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"event filter {expression!r} is not valid CEL: {first}") from None
    unknown = sorted(set(program.variables()) - VARIABLES)
    if unknown:
        raise ValueError(
            f"event filter {expression!r} uses {', '.join(unknown)}: only `payload` (the"
            " event's data) is available"
        )
    return program


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
