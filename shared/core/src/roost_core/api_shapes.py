"""The api's remaining HTTP shapes: pages of lists, the workflow and worker resources, and
the small answers (a registration, a trigger, a cancelled task, a stream token, an
error). With ``api_models`` and ``schedule_models`` they are what the api's OpenAPI
document is generated from and what the SDK reads answers into. Pure pydantic, no IO.

Like every response model here they ignore unknown fields, so an older SDK still reads a
newer api; a field an older api may leave out has a default."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from roost_core.api_models import PushedEvent, RateLimitInfo, Run, RunSummary
from roost_core.schedule_models import Cron, ScheduledRun
from roost_core.wire import ConcurrencyDefinition, TaskDefinition

# The longest a stream token lives (roost_core.auth mints it; defined here, where the
# request that asks for one is, so that this module needs no database driver).
MAX_STREAM_TOKEN_SECONDS = 3600


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# Errors.


class ErrorDetail(_Model):
    code: str = Field(description="a stable name for the kind of error, e.g. unknown_run")
    message: str = Field(description="what was wrong, naming the bad value")


class ErrorBody(_Model):
    """Every error the api answers (4xx and 5xx) has this body."""

    error: ErrorDetail


# Operations.


class Health(_Model):
    status: Literal["ok", "ready", "unavailable"]
    error: str | None = None  # what is down, when unavailable


class ActivityPoint(_Model):
    minute: int = Field(description="the minute's start, unix seconds")
    succeeded: int
    failed: int
    cancelled: int
    task_p50: float | None = None
    task_p95: float | None = None


class Activity(_Model):
    minutes: int
    points: list[ActivityPoint]
    # Attempts ready on each workflow's task queue; null when RabbitMQ is away.
    ready: dict[str, int] | None = None


class WorkerInfo(_Model):
    """A worker process (``id`` is name@host:pid), from its heartbeats."""

    id: str
    name: str
    status: Literal["alive", "draining", "stopped", "dead"]
    version: str | None = None
    sdk_version: str | None = None
    labels: dict[str, str | int | float] = Field(
        default={},
        description='what the process says it is, e.g. {"gpu": "a100", "memory_gb": 64}: '
        "its Worker's labels as its latest heartbeat carried them (not yet used to place "
        "tasks)",
    )
    workflows: list[str] = []
    slots: int = 0
    running: int = 0
    started_at: datetime | None = None
    last_heartbeat_at: datetime | None = None


class WorkerList(_Model):
    workers: list[WorkerInfo]


class StreamTokenRequest(BaseModel):
    """``POST /api/v1/stream-tokens`` (the body is optional)."""

    model_config = ConfigDict(extra="forbid")
    ttl_seconds: float = Field(default=300, ge=1, le=MAX_STREAM_TOKEN_SECONDS, allow_inf_nan=False)


class StreamToken(_Model):
    token: str
    expires_at: int = Field(description="unix seconds")


# Workflows.


class Registered(_Model):
    name: str
    version: str
    created: bool = Field(description="false: this version was registered before")


class WorkflowSummary(_Model):
    name: str
    version: str
    versions: int
    tasks: list[dict[str, Any]]
    input_schema: dict[str, Any] | None = None
    updated_at: datetime


class WorkflowList(_Model):
    workflows: list[WorkflowSummary]


class WorkflowVersion(_Model):
    """A workflow's definition, as registered, with its version."""

    name: str
    version: str
    tasks: list[TaskDefinition]
    input_schema: dict[str, Any] | None = None
    on_failure: TaskDefinition | None = None
    concurrency: ConcurrencyDefinition | None = None
    on_events: list[str] = []
    on_crons: list[str] = []
    cron_input: Any = None


class WorkflowStats(_Model):
    workflow: str
    hours: float
    runs: int
    succeeded: int
    failed: int
    cancelled: int
    success_rate: float | None = None  # of the runs that ended; null when none did
    duration_p50: float | None = None
    duration_p95: float | None = None


# Runs.


class TriggeredRunBody(Run):
    """A run just triggered; ``warning`` when no live worker serves its workflow."""

    warning: str | None = None


class AcceptedRun(_Model):
    """A run accepted (``Prefer: respond-async``): durable in RabbitMQ, created by the
    scheduler moments later. Reading it (``GET /api/v1/runs/{id}``) waits until it is."""

    id: str
    workflow: str
    workflow_version: str
    status: str = Field(description="QUEUED")
    warning: str | None = None


class BulkRun(_Model):
    id: str
    created: bool = Field(description="false: an earlier run had this idempotency key")


class BulkTriggered(_Model):
    runs: list[BulkRun]
    warning: str | None = None


class RunPage(_Model):
    runs: list[RunSummary]
    next_cursor: str | None = None


class TaskCancellation(_Model):
    run_id: str
    task: str
    status: Literal["CANCELLED", "CANCELLING"]


class LogLine(_Model):
    id: int
    task: str
    attempt: int
    message: str
    at: float = Field(description="unix seconds")


class LogPage(_Model):
    logs: list[LogLine]
    next_after: int | None = None


class CancelledAttempts(_Model):
    task_run_ids: list[str]


# Events, rate limits and schedules: lists.


class PushedEvents(_Model):
    events: list[PushedEvent]


class PushedEventPage(_Model):
    events: list[PushedEvent]
    next_cursor: str | None = None


class RateLimitList(_Model):
    rate_limits: list[RateLimitInfo]


class CronPage(_Model):
    crons: list[Cron]
    next_cursor: str | None = None


class ScheduledPage(_Model):
    scheduled: list[ScheduledRun]
    next_cursor: str | None = None
