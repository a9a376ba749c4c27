"""Settings of the gateway service (ROOST_* variables)."""

from __future__ import annotations

from pydantic import Field

from roost_core.settings import TokenCheckingSettings


class GatewaySettings(TokenCheckingSettings):
    gateway_host: str = Field(default="127.0.0.1", description="interface to listen on")
    gateway_port: int = Field(default=7078, description="TCP port to listen on")
    ping_seconds: float = Field(
        default=15.0, gt=0, description="heartbeat comment on idle streams (keeps proxies open)"
    )
    subscriber_buffer: int = Field(
        default=10_000, ge=10, description="events buffered per subscriber before it is cut off"
    )
    send_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a client that takes no data this long is disconnected"
    )
    trace_max_spans_per_run: int = Field(
        default=5000,
        ge=0,
        description="the span store keeps at most this many spans of one run (0: none)",
    )
