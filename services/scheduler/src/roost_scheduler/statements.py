"""The scheduler's own statements (``roost_scheduler/sql/*.sql``: the lost-message
check's reads and its chores); the engine's are roost_core's."""

from __future__ import annotations

from roost_core.queries import load

SQL = load("roost_scheduler", "sql")
