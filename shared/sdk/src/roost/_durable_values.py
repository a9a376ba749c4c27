"""Small pure helpers of the durable calls (roost._durable): how a call is named in an
error, instants and times, and the JSON a journal records."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from roost._typed import jsonable


def described(kind: str, name: str) -> str:
    if kind == "event":
        return f"wait_for_event {name!r}"
    if kind == "approval":
        return f"wait_for_approval {name!r}"
    if kind == "any":
        return f"wait_for_any of {name!r}"
    if kind == "spawn":
        return f"a trigger of {name!r}"
    if kind == "join":
        return f"a wait for runs of {name!r}"
    return f"step {name!r}" if kind == "step" else kind


def iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()


def json_text(value: Any, what: str) -> str:
    """``value`` as JSON text, or TypeError naming ``what``: what a replay gets back
    must be what the first run got, so only JSON is recorded (no NaN, which the wire
    cannot carry)."""
    data = jsonable(value, what)
    try:
        return json.dumps(data, allow_nan=False)
    except ValueError as exc:
        raise TypeError(f"{what} returned a value that is not JSON: {exc}") from None


def instant(when: datetime | float, what: str) -> float:
    """An instant (``sleep_until``'s, ``what``) in unix seconds. A naive datetime is
    refused: it would mean the local time of whichever worker runs the task."""
    if isinstance(when, datetime):
        if when.utcoffset() is None:
            raise ValueError(
                f"{what} takes an aware datetime, not the naive {when!r}: "
                "give it a tzinfo (datetime.now(UTC) + ...)"
            )
        return when.timestamp()
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        raise TypeError(f"{what} takes an aware datetime or unix seconds, not {when!r}")
    return float(when)
