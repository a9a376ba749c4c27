"""Plain SQL migrations, applied in order and recorded in ``schema_migrations``."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import psycopg

from roost_core.db import translate_errors
from roost_core.queries import SQL

logger = logging.getLogger(__name__)

# Any constant works; it only keeps two concurrent `roost migrate` from racing.
_LOCK_ID = 0x526F6F7374
_LOCK_MIGRATIONS = SQL.lock_migrations
_UNLOCK_MIGRATIONS = SQL.advisory_unlock
_CREATE_SCHEMA_MIGRATIONS = SQL.create_schema_migrations
_APPLIED_MIGRATIONS = SQL.applied_migrations
_RECORD_MIGRATION = SQL.record_migration
_COUNT_APPLIED = SQL.count_migrations


def available() -> list[tuple[str, str]]:
    """(version, sql) of every migration shipped with roost_core, in order."""
    folder = resources.files("roost_core").joinpath("sql", "migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


def count_applied(conn: psycopg.Connection[Any]) -> int:
    """How many migrations the database has applied."""
    row = conn.execute(_COUNT_APPLIED).fetchone()
    return int(row[0]) if row else 0


def apply(conninfo: str) -> list[str]:
    """Apply every migration not yet applied; return the versions applied now."""
    applied_now: list[str] = []
    with translate_errors(), psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(_LOCK_MIGRATIONS, {"lock_id": _LOCK_ID})
        try:
            conn.execute(_CREATE_SCHEMA_MIGRATIONS)
            done = {r[0] for r in conn.execute(_APPLIED_MIGRATIONS)}
            for version, sql in available():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute(_RECORD_MIGRATION, {"version": version})
                logger.info(
                    "migration applied", extra={"action": "migration_applied", "version": version}
                )
                applied_now.append(version)
        finally:
            conn.execute(_UNLOCK_MIGRATIONS, {"lock_id": _LOCK_ID})
    return applied_now
