"""Durations as users write them: seconds, a timedelta, or "10m"-style strings."""

from __future__ import annotations

import re
from datetime import timedelta

from roost._errors import InvalidDefinitionError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")

Duration = float | int | timedelta | str


def seconds(value: Duration | None, what: str) -> float | None:
    """``value`` in seconds; None stays None. Raises InvalidDefinitionError naming
    ``what`` and the value when it cannot be read or is not positive."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidDefinitionError(f"{what}={value!r} is not a duration")
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise InvalidDefinitionError(
                f"{what}={value!r} is not a duration: use seconds, a timedelta, or a string "
                "like '90s', '10m', '1h30m', '500ms'"
            )
        result = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise InvalidDefinitionError(f"{what}={value!r} is not a duration")
    if result <= 0:
        raise InvalidDefinitionError(f"{what}={value!r} must be longer than zero")
    return result
