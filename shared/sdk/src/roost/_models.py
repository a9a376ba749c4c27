"""What the api returns, as typed objects: the models live with the request shapes in
``roost_core.api_models`` (and ``schedule_models``); re-exported here for the SDK."""

from __future__ import annotations

from roost_core.api_models import (
    Attempt,
    PushedEvent,
    RateLimitInfo,
    Run,
    RunSummary,
    RunTrace,
    Span,
    SpanEvent,
    TaskRun,
    TriggeredRun,
)
from roost_core.schedule_models import Cron, CronRun, ScheduledRun

__all__ = [
    "Attempt",
    "Cron",
    "CronRun",
    "PushedEvent",
    "RateLimitInfo",
    "Run",
    "RunSummary",
    "RunTrace",
    "ScheduledRun",
    "Span",
    "SpanEvent",
    "TaskRun",
    "TriggeredRun",
]
