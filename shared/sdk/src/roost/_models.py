"""What the api returns, as typed objects: the models live with the request shapes in
``roost_core.api_models``; re-exported here for the SDK."""

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

__all__ = [
    "Attempt",
    "PushedEvent",
    "RateLimitInfo",
    "Run",
    "RunSummary",
    "RunTrace",
    "Span",
    "SpanEvent",
    "TaskRun",
    "TriggeredRun",
]
