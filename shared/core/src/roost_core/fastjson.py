"""JSON on the hot paths, by orjson (issue #17).

Every run's span batches, events, outputs and task messages are encoded and decoded
several times on their way through the processes: with the standard library's ``json``
that was a third of the span writer's CPU and a tenth of the scheduler's. orjson does
the same work in a fraction of the time. Its output is compact (no spaces) and UTF-8,
which PostgreSQL's ``json``/``jsonb`` and every reader here take alike.

Where orjson refuses a value the standard library takes (an integer beyond 64 bits, a
subclass it does not know), :func:`dumps` and :func:`dumpb` fall back to ``json``, so
nothing a user could send before is refused now. Text whose exact bytes matter (the
hash of a workflow definition) keeps using ``json`` where it is made.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: What :func:`loads` raises for malformed input (a ``ValueError``, as ``json``'s is).
JSONDecodeError = orjson.JSONDecodeError


def dumpb(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: e.g. an int beyond 64 bits
        return json.dumps(value, separators=(",", ":")).encode()


def dumps(value: Any) -> str:
    """``value`` as compact JSON text."""
    return dumpb(value).decode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """The value of a JSON document; raises :data:`JSONDecodeError` (a ``ValueError``)."""
    return orjson.loads(data)
