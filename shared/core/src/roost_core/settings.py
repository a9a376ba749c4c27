"""Typed settings. Each service builds its own object in ``__main__`` and passes it down.

Every variable carries the ``ROOST_`` prefix; an empty database URL means "use the
standard libpq ``PG*`` variables", as psql would.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

NAMESPACE_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9_-]*")


class CoreSettings(BaseSettings):
    """What every service and worker shares: where the broker and database are."""

    model_config = SettingsConfigDict(env_prefix="ROOST_", extra="ignore")

    database_url: str = Field(
        default="", description="PostgreSQL conninfo or URL; empty means libpq PG* variables"
    )
    broker_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/%2F", description="RabbitMQ AMQP URL"
    )
    namespace: str = Field(
        default="roost", description="prefix of every exchange and queue name on the broker"
    )

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if not NAMESPACE_RE.fullmatch(value):
            raise ValueError(
                f"ROOST_NAMESPACE={value!r} may hold only letters, digits, '_' and '-'"
            )
        return value


class TokenCheckingSettings(CoreSettings):
    """What the services that check API tokens against PostgreSQL share (api, gateway)."""

    db_pool_size: int = Field(default=10, description="PostgreSQL connections in the pool")
    token_cache_seconds: float = Field(
        default=10.0, description="how long a verified token is trusted before re-checking"
    )
