"""Settings of the dashboard (ROOST_* variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from roost_core.settings import CoreSettings


class DashboardSettings(CoreSettings):
    dashboard_host: str = Field(default="127.0.0.1", description="interface to listen on")
    dashboard_port: int = Field(default=8080, description="TCP port to listen on")
    api_url: str = Field(
        default="http://127.0.0.1:7077", description="the api the dashboard reads and acts through"
    )
    gateway_url: str = Field(
        default="http://127.0.0.1:7078", description="the gateway browsers stream events from"
    )
    secure_cookies: bool = Field(
        default=False,
        description="mark the session cookie Secure (set when the dashboard is served over HTTPS)",
    )
    stream_token_seconds: int = Field(
        default=3600,
        ge=1,
        le=3600,
        description="life of the stream tokens pages get for the gateway; a page renews its "
        "own when the gateway refuses one (after a gateway restart, say)",
    )
    assets_dir: Path = Field(
        default=Path(__file__).resolve().parents[2] / "node_modules",
        description="where `npm ci` put the front-end packages (services/dashboard/node_modules)",
    )
