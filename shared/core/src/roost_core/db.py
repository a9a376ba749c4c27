"""PostgreSQL access: the one boundary where driver errors become Roost errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

from roost_core.errors import ConflictError, DatabaseUnavailableError

DEFAULT_TENANT_ID = "00000000-0000-0000-0000-000000000001"


def async_pool(conninfo: str, max_size: int) -> AsyncConnectionPool[Any]:
    """The connection pool of an HTTP service (api, gateway): autocommit connections,
    opened in the app's lifespan (``await pool.open(wait=False)``)."""
    return AsyncConnectionPool(
        conninfo, min_size=2, max_size=max_size, open=False, kwargs={"autocommit": True}
    )


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn psycopg's connection and constraint errors into Roost errors."""
    try:
        yield
    except pg_errors.UniqueViolation as exc:
        raise ConflictError(
            f"conflict with existing data: {exc.diag.message_detail or exc}"
        ) from exc
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"PostgreSQL is unavailable: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe(conninfo: str) -> str:
    """The conninfo with any password hidden, for messages and logs."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<unparseable database URL>"
    params.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(libpq defaults / PG* variables)"
