"""The SDK's settings, from ROOST_* environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from roost._errors import ConfigurationError
from roost_core.wire import WORKER_VERSION_MAX


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROOST_", extra="ignore")

    api_url: str = Field(default="http://127.0.0.1:7077", description="where the api listens")
    gateway_url: str = Field(
        default="http://127.0.0.1:7078", description="where the event gateway listens (SSE)"
    )
    token: str = Field(default="", description="API token (roost token create)")
    broker_url: str = Field(default="amqp://guest:guest@127.0.0.1:5672/%2F")
    namespace: str = Field(default="roost")
    tls_strategy: Literal["tls", "none"] | None = Field(
        default=None, description="tls: HTTPS with verification; none: plain HTTP (local only)"
    )
    tls_root_ca: str | None = Field(default=None, description="CA bundle to verify the api with")
    http_timeout_seconds: float = 30.0
    respond_async: bool = Field(
        default=True,
        description="wf.run(wait_for_result=False) returns once the trigger is durable in "
        "RabbitMQ (the api's answer to Prefer: respond-async), and the scheduler creates "
        "the run moments later, with others: a loop of triggers goes several times faster",
    )
    cancel_grace_seconds: float = Field(
        default=0.5,
        ge=0,
        description="after a cancel, how long a task may stop by itself before it is interrupted",
    )
    heartbeat_interval_seconds: float = Field(
        default=5.0, gt=0, description="how often a worker process tells the scheduler it lives"
    )
    amqp_heartbeat_seconds: int = Field(
        default=5,
        ge=1,
        description="AMQP heartbeat of workers' consumers: a frozen worker's tasks return "
        "to the queue after about twice this",
    )
    long_task_ack_seconds: float = Field(
        default=600.0,
        gt=0,
        description="a task still running after this acknowledges its message early, so "
        "RabbitMQ's consumer_timeout (30 min by default) never redelivers it; keep it below "
        "that timeout",
    )
    worker_version: str | None = Field(
        default=None,
        max_length=WORKER_VERSION_MAX,
        description="the application's version, shown with each worker process (a "
        "worker's own version= wins over it)",
    )
    started_report_delay_seconds: float = Field(
        default=0.05,
        ge=0,
        description="a worker reports a task as started only if it still runs after this",
    )

    @field_validator("worker_version", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # ROOST_WORKER_VERSION= (set but empty, as templates often leave it) means none.
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    def base_url(self) -> str:
        """The api URL, checked against the TLS strategy."""
        url = self.api_url.rstrip("/")
        if "://" not in url:
            scheme = "http" if self.tls_strategy == "none" else "https"
            url = f"{scheme}://{url}"
        scheme = url.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise ConfigurationError(f"ROOST_API_URL={self.api_url!r}: use http:// or https://")
        if self.tls_strategy == "tls" and scheme == "http":
            raise ConfigurationError(
                f"ROOST_TLS_STRATEGY=tls but ROOST_API_URL={self.api_url!r} is plain http: "
                "use an https:// URL, or ROOST_TLS_STRATEGY=none for local development"
            )
        if self.tls_strategy == "none" and scheme == "https":
            raise ConfigurationError(
                f"ROOST_TLS_STRATEGY=none but ROOST_API_URL={self.api_url!r} is https: "
                "use an http:// URL, or ROOST_TLS_STRATEGY=tls"
            )
        return url
