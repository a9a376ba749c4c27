"""What a piece of work sent PostgreSQL, from libpq's protocol trace: for tests that
count round trips (a Flush is a read waited for, a Sync the end of a pipeline)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import psycopg


def sent(conn: psycopg.Connection[Any], work: Callable[[], object]) -> list[str]:
    """The names of the frontend messages (Parse, Bind, Execute, Flush, Sync...) that
    ``work`` sent on ``conn``, in order."""
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            work()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        return [line.split("\t")[3].strip() for line in trace if "\tF\t" in line]
