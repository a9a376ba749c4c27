"""What the store's modules share: the connection type and how times are shown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

Conn = AsyncConnection[Any]


def iso(value: datetime | None) -> str | None:
    """A time as the api shows it (ISO 8601), or None."""
    return value.isoformat() if value else None
