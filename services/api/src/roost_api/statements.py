"""The api's own statements (``roost_api/sql/*.sql``: registering workflows and the
reads behind its listings); the engine's are roost_core's."""

from __future__ import annotations

from roost_core.queries import load

SQL = load("roost_api", "sql")
