"""The api's HTTP shapes, defined once: the request bodies it accepts (the api validates
them; the SDK shapes its bodies with them) and what it answers (the SDK's typed results).
Pure pydantic, no IO.

Request models forbid unknown fields, so a typo in a body is refused with its name.
Response models ignore unknown fields, so an older SDK still reads a newer api."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from roost_core.labels import DesiredLabels
from roost_core.metadata import Metadata
from roost_core.statuses import RunStatus, TaskStatus
from roost_core.triggers import KEY_PATTERN
from roost_core.wire import Priority, Whole

# Most runs or events one bulk request may carry (one transaction each).
MAX_BULK = 1000


# Request bodies.


# A child run's key within its parent task: what makes its spawn idempotent.
CHILD_KEY_PATTERN = r"^[A-Za-z0-9_.:/@-]{1,200}$"


class ParentRef(BaseModel):
    """The task a run is triggered inside (issue #18, child runs): the run is linked to
    it, and ``key`` makes the spawn idempotent: a task (retried or replayed) asking again
    with the same key gets the run it made before, never a second one. Unless the
    trigger gives its own, the child takes the parent run's metadata."""

    model_config = ConfigDict(extra="forbid")
    task_run_id: str = Field(
        json_schema_extra={"format": "uuid"}, description="the spawning task run's id"
    )
    key: str = Field(pattern=CHILD_KEY_PATTERN, description="the spawn's key in that task")


class TriggerRequest(BaseModel):
    """``POST /api/v1/workflows/{name}/runs``."""

    model_config = ConfigDict(extra="forbid")
    input: Any = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=255)
    version: str | None = None
    metadata: Metadata = Field(default_factory=dict)
    parent: ParentRef | None = None
    # Placement (issue #21): overrides the tasks' desired labels, label by label.
    desired_labels: DesiredLabels | None = None
    # 1 (low) to 3 (high); none: the workflow's default_priority, else 1.
    priority: Priority | None = None


class BulkItem(BaseModel):
    """One run of a bulk trigger."""

    model_config = ConfigDict(extra="forbid")
    input: Any = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=255)
    metadata: Metadata = Field(default_factory=dict)
    parent: ParentRef | None = None
    priority: Priority | None = None  # as a single trigger's
    desired_labels: DesiredLabels | None = None  # as a single trigger's


class BulkTriggerRequest(BaseModel):
    """``POST /api/v1/workflows/{name}/runs/bulk``."""

    model_config = ConfigDict(extra="forbid")
    runs: list[BulkItem] = Field(min_length=1, max_length=MAX_BULK)
    version: str | None = None


class EventItem(BaseModel):
    """``POST /api/v1/events``, and one event of a bulk push."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(json_schema_extra={"pattern": KEY_PATTERN})
    data: Any = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=255)


class BulkEventRequest(BaseModel):
    """``POST /api/v1/events/bulk``."""

    model_config = ConfigDict(extra="forbid")
    events: list[EventItem] = Field(min_length=1, max_length=MAX_BULK)


class PutRateLimit(BaseModel):
    """``PUT /api/v1/rate-limits/{key}``."""

    model_config = ConfigDict(extra="forbid")

    limit: Whole = Field(ge=1, le=1_000_000_000)
    # None: a concurrency limit. Checked by the api, naming a bad one.
    duration: str | None = Field(
        default=None, json_schema_extra={"enum": ["second", "minute", "hour", "day", None]}
    )


class CancelTaskRequest(BaseModel):
    """``POST /api/v1/runs/{run_id}/tasks/{task}/cancel`` (the body is optional)."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=1000)


# Responses.


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Attempt(_Model):
    """One attempt of a task."""

    attempt: int
    status: TaskStatus
    worker_id: str | None = None
    error: dict[str, Any] | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Where the engine placed it and why (issue #21): {"worker_id", "reason"}; or
    # {"waits": why} while no live worker can take it; None: the workflow's shared queue.
    placement: dict[str, str] | None = None


class TaskRun(_Model):
    """One task of a run: its status, current attempt, output or error, and timings."""

    id: str
    name: str
    status: TaskStatus
    parents: list[str]
    attempt: int
    output: Any = None
    error: dict[str, Any] | None = None
    worker_id: str | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # WAITING (a durable task, issue #18): what it waits for, {"reason", "until"}.
    waiting: dict[str, Any] | None = None
    # The current attempt's placement (see Attempt.placement): why it waits, if it does.
    placement: dict[str, str] | None = None
    attempts: list[Attempt] = []


class RunSummary(_Model):
    id: str
    workflow: str
    workflow_version: str | None = None
    status: RunStatus
    idempotency_key: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metadata: dict[str, str] = {}
    priority: int = 1  # 1 (low) to 3 (high): its tasks' priority on their queues
    # The schedule that started it: {"kind": "cron", "cron_id", "cron", "fire_at"} or
    # {"kind": "scheduled", "scheduled_id"} (roost_core.metadata.schedule_trigger).
    trigger: dict[str, str] | None = None


class RunParent(_Model):
    """The task a child run was triggered inside."""

    run_id: str
    task: str
    workflow: str | None = None  # None: the parent run is gone (retention)
    key: str


class ChildRun(_Model):
    """A run triggered inside one of this run's tasks."""

    id: str
    workflow: str
    status: RunStatus
    task: str  # the task that triggered it
    key: str
    created_at: datetime


class Run(RunSummary):
    """A run with all its tasks, and its parent and children (child runs, issue #18)."""

    input: Any = None
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    tasks: list[TaskRun] = []
    parent: RunParent | None = None
    children: list[ChildRun] = []  # the first 100, in the order they were triggered
    # How many children it has in each status (all of them: list them by parent_run_id).
    children_by_status: dict[str, int] = {}

    def task(self, name: str) -> TaskRun:
        """The task named ``name``; KeyError naming it if the run has none."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"run {self.id} has no task {name!r}")


class TriggeredRun(_Model):
    """A run a pushed event started."""

    id: str
    workflow: str


class PushedEvent(_Model):
    """An event pushed to Roost, with the runs it started (one per workflow whose
    ``on_events`` matched its key; none if no workflow did)."""

    id: str
    key: str
    data: Any = None
    idempotency_key: str | None = None
    created_at: datetime
    runs: list[TriggeredRun] = []


class SpanEvent(_Model):
    """Something that happened during a span: an exception carries ``exception.type``,
    ``exception.message`` and ``exception.stacktrace`` attributes."""

    name: str
    at: float
    attributes: dict[str, Any] = {}


class Span(_Model):
    """One finished span of a run's trace (times in unix seconds)."""

    run_id: str
    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str
    service: str
    kind: str
    start: float
    end: float
    status: str  # unset, ok, error
    status_message: str | None = None
    attributes: dict[str, Any] = {}
    events: list[SpanEvent] = []

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


class RunTrace(_Model):
    """A run's trace from Roost's own span store: every stored span, in start order."""

    run_id: str
    status: RunStatus
    trace_id: str | None = None
    spans: list[Span]


class RateLimitInfo(BaseModel):
    """A key as the api reports it, with its usage right now."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str
    limit: int
    window: str | None  # None: a concurrency limit
    kind: Literal["concurrency", "window"]
    units_in_use: int
    units_left: int
    waiting: int  # task attempts waiting for units
    # What an attempt that does not fit does (issue #21): it waits its turn; it is
    # cancelled; or the key's oldest attempts are cancelled. Set by task concurrency.
    on_full: Literal["wait", "cancel_newest", "cancel_in_progress"] = "wait"
