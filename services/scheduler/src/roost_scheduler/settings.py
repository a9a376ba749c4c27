"""Settings of the scheduler service (ROOST_* variables)."""

from __future__ import annotations

from pydantic import Field

from roost_core.settings import CoreSettings


class SchedulerSettings(CoreSettings):
    scheduler_prefetch: int = Field(
        default=200, description="unacknowledged reports held at once; bounds a batch"
    )
    sweep_interval_seconds: float = Field(
        default=1.0, description="how often the outbox sweeper looks for stranded rows"
    )
    sweep_grace_seconds: float = Field(
        default=5.0, description="age after which an outbox row counts as stranded"
    )
    maintenance_interval_seconds: float = Field(
        default=30.0,
        description="when autovacuum is off, vacuum/analyze the hot tables this often (0: never)",
    )
    timer_interval_seconds: float = Field(
        default=0.2,
        gt=0,
        description="how often due retries and deadlines are looked for (their precision)",
    )
    worker_heartbeat_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="a worker not heard from for this long loses its running attempts",
    )
    lost_message_check_seconds: float = Field(
        default=10.0,
        ge=0,
        description="how often the safety net looks for queued attempts whose task message"
        " was lost (0: never)",
    )
    lost_message_grace_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a queued attempt younger than this is never taken for lost",
    )
    lost_message_confirm_seconds: float = Field(
        default=5.0,
        gt=0,
        description="a suspected attempt is sent again once every live worker has sent a"
        " heartbeat this long after the suspicion without holding it",
    )
    cron_misfire_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="a cron fire time later than this counts as missed (every scheduler was"
        " down) and follows the cron's catch_up policy; a later one still fires",
    )
    scheduler_metrics_port: int = Field(
        default=9464, ge=0, description="serve Prometheus /metrics on this port (0: off)"
    )
    run_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="delete runs (with their tasks, events and spans) this long after they"
        " ended (0: keep forever)",
    )
    retention_interval_seconds: float = Field(
        default=60.0, gt=0, description="how often expired runs are looked for"
    )
