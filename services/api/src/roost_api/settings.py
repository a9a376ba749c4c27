"""Settings of the api service (ROOST_* variables)."""

from __future__ import annotations

from pydantic import Field

from roost_core.settings import CoreSettings


class ApiSettings(CoreSettings):
    api_host: str = Field(default="127.0.0.1", description="interface to listen on")
    api_port: int = Field(default=7077, description="TCP port to listen on")
    tls_cert: str | None = Field(default=None, description="PEM certificate: serve HTTPS")
    tls_key: str | None = Field(default=None, description="PEM private key for tls_cert")
    db_pool_size: int = Field(default=10, description="PostgreSQL connections in the pool")
    token_cache_seconds: float = Field(
        default=10.0, description="how long a verified token is trusted before re-checking"
    )
    worker_heartbeat_timeout_seconds: float = Field(
        default=15.0, gt=0, description="a worker silent this long is listed as dead"
    )
    metrics_refresh_seconds: float = Field(
        default=5.0, gt=0, description="how often /metrics' fleet-wide gauges are re-read"
    )
