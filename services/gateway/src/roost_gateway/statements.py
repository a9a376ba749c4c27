"""The gateway's own statements (``roost_gateway/sql/*.sql``: reads of the event log);
the others are roost_core's."""

from __future__ import annotations

from roost_core.queries import load

SQL = load("roost_gateway", "sql")
