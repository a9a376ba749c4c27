"""Settings of the ratelimiter service (ROOST_* variables)."""

from __future__ import annotations

from pydantic import Field

from roost_core.settings import CoreSettings


class RatelimiterSettings(CoreSettings):
    admission_interval_seconds: float = Field(
        default=0.5,
        gt=0,
        description="longest time between admission passes while tasks wait (windows refill"
        " on time regardless: a pass is scheduled for the moment units come back)",
    )
    admission_batch: int = Field(
        default=200, ge=1, description="waiting attempts looked at per key and pass"
    )
    ratelimiter_metrics_port: int = Field(
        default=9465, ge=0, description="serve Prometheus /metrics on this port (0: off)"
    )
