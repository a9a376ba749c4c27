"""Settings of the api service (ROOST_* variables)."""

from __future__ import annotations

from pydantic import Field

from roost_core.settings import TokenCheckingSettings


class ApiSettings(TokenCheckingSettings):
    api_host: str = Field(default="127.0.0.1", description="interface to listen on")
    api_port: int = Field(default=7077, description="TCP port to listen on")
    tls_cert: str | None = Field(default=None, description="PEM certificate: serve HTTPS")
    tls_key: str | None = Field(default=None, description="PEM private key for tls_cert")
    worker_heartbeat_timeout_seconds: float = Field(
        default=15.0, gt=0, description="a worker silent this long is listed as dead"
    )
    metrics_refresh_seconds: float = Field(
        default=5.0,
        gt=0,
        description="/metrics' fleet-wide gauges are read by a scrape at most this often"
        " (scrapes in between get the values read last)",
    )
