"""The wire protocol, defined once: workflow definitions and every message on the broker.

Workers receive :class:`TaskMessage` inside a Dramatiq envelope (one message per task
attempt) and report :class:`TaskStarted`, :class:`TaskSucceeded` and :class:`TaskFailed`
to the events exchange. Every message names its ``(task_run_id, attempt)`` so that each
consumer can guard its transition and ignore a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JSON = Any  # a JSON value: dict, list, str, int, float, bool or None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskDefinition(_Frozen):
    """One task of a workflow, as registered with the api, with its retry and timeout
    policy. Durations are in seconds."""

    name: str
    parents: list[str] = Field(default_factory=list)
    retries: int = Field(default=0, ge=0, le=1000)
    backoff_initial_seconds: float = Field(default=1.0, ge=0)
    backoff_factor: float | None = Field(default=None, ge=1)
    backoff_max_seconds: float | None = Field(default=None, ge=0)
    execution_timeout_seconds: float | None = Field(default=None, gt=0)
    schedule_timeout_seconds: float | None = Field(default=None, gt=0)

    def retry_delay(self, failed_attempt: int) -> float:
        """Seconds to wait before the attempt after ``failed_attempt`` (1-based):
        ``min(max, initial * factor ** (failed_attempt - 1))``; no factor: ``initial``."""
        delay = self.backoff_initial_seconds
        if self.backoff_factor is not None:
            delay *= self.backoff_factor ** (failed_attempt - 1)
        if self.backoff_max_seconds is not None:
            delay = min(delay, self.backoff_max_seconds)
        return delay


class WorkflowDefinition(_Frozen):
    """A workflow's DAG as the SDK registers it. Its hash is its version."""

    name: str
    tasks: list[TaskDefinition]
    input_schema: dict[str, JSON] | None = None
    on_failure: TaskDefinition | None = None  # runs once, after the run has failed

    @cached_property
    def by_name(self) -> dict[str, TaskDefinition]:
        """Tasks by name, the on_failure handler included."""
        found = {t.name: t for t in self.tasks}
        if self.on_failure is not None:
            found[self.on_failure.name] = self.on_failure
        return found

    def version_hash(self) -> str:
        """A stable hash of the definition: equal definitions share a version."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class TaskError(_Frozen):
    """What went wrong in a task attempt."""

    type: str
    message: str
    traceback: str | None = None


class TaskMessage(_Frozen):
    """One task attempt, sent to a worker queue."""

    run_id: str
    task_run_id: str
    workflow: str
    task: str
    attempt: int
    input: JSON
    parent_outputs: dict[str, JSON] = Field(default_factory=dict)
    execution_timeout: float | None = None  # seconds the attempt may run
    schedule_deadline: float | None = None  # unix seconds by which it must have started
    task_errors: dict[str, JSON] = Field(default_factory=dict)  # for on_failure handlers
    trace: dict[str, str] = Field(default_factory=dict)  # W3C trace context carrier


class _TaskReport(_Frozen):
    run_id: str
    task_run_id: str
    task: str
    attempt: int
    worker_id: str


class TaskStarted(_TaskReport):
    """A worker began an attempt."""

    kind: Literal["started"] = "started"
    started_at: float


class TaskSucceeded(_TaskReport):
    """An attempt returned; ``output`` is the task's JSON result."""

    kind: Literal["succeeded"] = "succeeded"
    started_at: float
    finished_at: float
    output: JSON = None


class TaskFailed(_TaskReport):
    """An attempt raised."""

    kind: Literal["failed"] = "failed"
    started_at: float
    finished_at: float
    error: TaskError
    retryable: bool = True  # False: NonRetryableError, fail at once
    timed_out: bool = False  # the attempt hit its execution timeout


TaskReport = TaskStarted | TaskSucceeded | TaskFailed


class TaskEmitted(_TaskReport):
    """Something a running task said: a log line (``{"message": str}``), its progress
    (``{"fraction": 0..1, "message": str}``) or a chunk for its run's listeners (any
    JSON). Appended to the run's event log and streamed; never changes a task's state."""

    kind: Literal["emitted"] = "emitted"
    type: Literal["log", "progress", "stream"]
    started_at: float  # when the attempt started: what a task emits shows it has
    at: float
    data: JSON = None


class WorkerHeartbeat(_Frozen):
    """Sent by every worker process every few seconds: it is alive, and runs these
    attempts (task run id -> attempt)."""

    worker_id: str
    name: str
    workflows: list[str]
    slots: int
    running: dict[str, int] = Field(default_factory=dict)
    sent_at: float


class CancelTasks(_Frozen):
    """Broadcast to every worker process: stop these attempts, and never start them."""

    run_id: str
    task_run_ids: list[str]


class _ReportEnvelope(BaseModel):
    report: TaskReport = Field(discriminator="kind")


def decode_report(body: bytes) -> TaskReport:
    """Parse a worker report; raises pydantic.ValidationError on a malformed body."""
    return _ReportEnvelope.model_validate_json(b'{"report":' + body + b"}").report


def dramatiq_envelope(queue_name: str, actor_name: str, message: TaskMessage) -> bytes:
    """Encode ``message`` exactly as Dramatiq's JSON encoder would encode
    ``actor.message(message_dict)``, so a stock Dramatiq consumer can decode it. An
    execution timeout becomes Dramatiq's per-message ``time_limit``, so its TimeLimit
    middleware interrupts the task on the worker."""
    options: dict[str, Any] = {}
    if message.execution_timeout is not None:
        options["time_limit"] = int(message.execution_timeout * 1000)
    return json.dumps(
        {
            "queue_name": queue_name,
            "actor_name": actor_name,
            "args": [message.model_dump(mode="json")],
            "kwargs": {},
            "options": options,
            "message_id": f"{message.task_run_id}:{message.attempt}",
            "message_timestamp": int(time.time() * 1000),
        },
        separators=(",", ":"),
    ).encode()
