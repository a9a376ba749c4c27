"""Plain SQL migrations, applied in order and recorded in ``schema_migrations``."""

from __future__ import annotations

import logging
from importlib import resources

import psycopg

from roost_core.db import translate_errors

logger = logging.getLogger(__name__)

# Any constant works; it only keeps two concurrent `roost migrate` from racing.
_LOCK_ID = 0x526F6F7374


def available() -> list[tuple[str, str]]:
    """(version, sql) of every migration shipped with roost_core, in order."""
    folder = resources.files("roost_core").joinpath("sql", "migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


def apply(conninfo: str) -> list[str]:
    """Apply every migration not yet applied; return the versions applied now."""
    applied_now: list[str] = []
    with translate_errors(), psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, sql in available():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                logger.info(
                    "migration applied", extra={"action": "migration_applied", "version": version}
                )
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now
