"""The wire protocol, defined once: every message on the broker, and the workflow
definitions (roost_core.definitions, re-exported here) they carry.

Workers receive :class:`TaskMessage` inside a Dramatiq envelope (one message per task
attempt) and report :class:`TaskStarted`, :class:`TaskSucceeded` and :class:`TaskFailed`
to the events exchange. Every message names its ``(task_run_id, attempt)`` so that each
consumer can guard its transition and ignore a duplicate.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from roost_core import fastjson
from roost_core.definitions import JSON as JSON
from roost_core.definitions import NAME_PATTERN as NAME_PATTERN
from roost_core.definitions import RATE_LIMIT_KEY_RE as RATE_LIMIT_KEY_RE
from roost_core.definitions import ConcurrencyDefinition as ConcurrencyDefinition
from roost_core.definitions import Priority as Priority
from roost_core.definitions import RateLimitUse as RateLimitUse
from roost_core.definitions import TaskDefinition as TaskDefinition
from roost_core.definitions import Whole as Whole
from roost_core.definitions import WorkflowDefinition as WorkflowDefinition
from roost_core.definitions import _Frozen
from roost_core.metadata import KEY_RE as LABEL_KEY_RE

# Longest version string a worker may report (the SDK refuses a longer one at once).
WORKER_VERSION_MAX = 100

# A worker's labels (issue #21): at most this many, each value a string this long at
# most, or a number (an int in 64 bits, a finite float); keys as run metadata's.
WORKER_LABELS_MAX = 32
WORKER_LABEL_VALUE_MAX = 200
LabelValue = str | int | float


class TaskError(_Frozen):
    """What went wrong in a task attempt."""

    type: str
    message: str
    traceback: str | None = None


class DurableCall(_Frozen):
    """One completed durable call of a durable task (issue #18), in the order the task
    made them: a ``ctx.step`` with its JSON result, or a sleep with its wake time. A
    resumed attempt re-runs the task from the top and gets these back instead of doing
    them again (roost.DurableContext)."""

    seq: int = Field(ge=0)  # its position in the task's sequence of durable calls
    kind: Literal["step", "sleep", "event", "approval", "spawn", "join", "any"]
    # The step's name; "sleep" for a sleep; the event key waited for; an approval's
    # question; the workflow a spawn triggered or a join waits for.
    name: str
    # A step's result; for an event wait, the event that ended it ({id, key, data,
    # created_at}); for an approval, the decision ({id, approved, by, reason, at}); None
    # while a wait waits and after it timed out.
    result: JSON = None
    until: float | None = None  # a sleep's wake time; a wait's timeout (or None)
    # A spawn's child runs (also its result) and those a join waits for, by id.
    children: list[str] | None = None


class EventWait(_Frozen):
    """What a durable task waiting for an event waits for: the next event pushed with
    ``key`` at or after ``since`` (unix seconds) whose data passes ``filter`` (a CEL
    expression over ``payload``, the event's data), not taken by another wait."""

    key: str
    filter: str | None = None
    since: float
    name: str = ""  # its branch's name in an any-of wait (ctx.wait_for_any); "" otherwise


class ApprovalAsk(_Frozen):
    """What a durable task waiting for a person's decision asks
    (``ctx.wait_for_approval``): the question, and any JSON details shown beside it."""

    question: str
    details: JSON = None


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
    metadata: dict[str, str] = Field(default_factory=dict)  # the run's (ctx.metadata)
    # A durable task's completed durable calls, from its earlier attempts: replayed.
    journal: list[DurableCall] = Field(default_factory=list)


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
    # The task was cancelled on its own (ctx.cancel, or runs.cancel_task through the api):
    # it ends CANCELLED, no retry, and its descendants never start.
    cancelled: bool = False


class TaskWaiting(_TaskReport):
    """A durable task's attempt suspended to wait (issue #18): its slot and units are
    given back, and the task runs again, replaying ``journal``, once the wait is over.
    ``journal`` is every durable call completed so far, the wait included."""

    kind: Literal["waiting"] = "waiting"
    started_at: float
    finished_at: float
    journal: list[DurableCall]
    # When it resumes, unix seconds: a sleep's end, an event wait's timeout; None: an
    # event wait without a timeout (only an event ends it).
    until: float | None
    reason: Literal["sleep", "event", "approval", "children", "any"]  # what it waits for
    event: EventWait | None = None  # reason "event": which event ends the wait
    # reason "any": the events any one of which ends the wait (with ``until``, if set).
    events: list[EventWait] | None = None
    approval: ApprovalAsk | None = None  # reason "approval": what a person is asked
    children: list[str] | None = None  # reason "children": the child runs it waits for


TaskReport = TaskStarted | TaskSucceeded | TaskFailed | TaskWaiting


class TaskEmitted(_TaskReport):
    """Something a running task said: a log line (``{"message": str}``), its progress
    (``{"fraction": 0..1, "message": str}``), a chunk for its run's listeners (any
    JSON), or its new execution deadline (``{"deadline": unix seconds, "seconds": from
    then}``, ctx.refresh_timeout: the engine moves its own deadline too). Appended to
    the run's event log and streamed; never changes a task's status."""

    kind: Literal["emitted"] = "emitted"
    type: Literal["log", "progress", "stream", "deadline"]
    started_at: float  # when the attempt started: what a task emits shows it has
    at: float
    data: JSON = None

    @model_validator(mode="after")
    def _deadline_has_one(self) -> TaskEmitted:
        # The engine reads it: a malformed one is refused here (and dead-lettered), not
        # found out inside the scheduler's transaction.
        if self.type == "deadline":
            data = self.data
            if not (
                isinstance(data, dict)
                and isinstance(data.get("deadline"), int | float)
                and not isinstance(data.get("deadline"), bool)
            ):
                raise ValueError(
                    f"a deadline line needs data {{'deadline': seconds}}, not {data!r}"
                )
        return self


# What a worker process says of itself in its heartbeats: taking work, draining (asked
# to stop, letting its running tasks finish), or stopped (its last heartbeat). "dead" is
# never reported: the engine concludes it from silence (roost_core.statuses.WorkerStatus).
WorkerState = Literal["alive", "draining", "stopped"]


def label_problem(key: object, value: object) -> str | None:
    """Why ``key: value`` cannot be a worker label, naming both; None if it can. The one
    rule the SDK refuses a label by, and the scheduler drops one by (a value PostgreSQL's
    jsonb cannot hold, such as NaN or a NUL character, would fail its whole batch)."""
    if not isinstance(key, str) or not LABEL_KEY_RE.fullmatch(key):
        return (
            f"label key {key!r} must be 1-64 letters, digits, '_', '.', '-' or '/'"
            " (not starting with '.', '-' or '/')"
        )
    if isinstance(value, str):
        if len(value) > WORKER_LABEL_VALUE_MAX:
            return f"label {key!r}: value longer than {WORKER_LABEL_VALUE_MAX} characters"
        if "\x00" in value:
            return f"label {key!r}: value {value!r} holds a NUL character"
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"label {key!r}: value {value!r} is not a string or a number"
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return f"label {key!r}: {value} does not fit in 64 bits"
    if isinstance(value, float) and not math.isfinite(value):
        return f"label {key!r}: {value!r} is not a finite number"
    return None


class WorkerHeartbeat(BaseModel):
    """Sent by every worker process every few seconds: it is alive (or draining, or has
    just stopped), and runs these attempts (task run id -> attempt).

    Compatible both ways: a heartbeat from an older worker lacks ``state``, the versions
    and the labels (it is ``alive``, unlabelled), and unknown fields from a newer worker
    are ignored rather than refused, since a refused heartbeat would make a live worker
    look dead."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    worker_id: str
    name: str
    workflows: list[str]
    slots: int
    running: dict[str, int] = Field(default_factory=dict)
    # Every attempt this process holds ("task run id:attempt"): running, or delivered and
    # waiting for a thread. The scheduler's safety net for lost messages reads it.
    held: list[str] = Field(default_factory=list)
    sent_at: float
    state: WorkerState = "alive"
    version: str | None = Field(default=None, max_length=WORKER_VERSION_MAX)  # the app's
    sdk_version: str | None = Field(default=None, max_length=WORKER_VERSION_MAX)  # roost's
    # What the process says it is ({"gpu": "a100", "memory_gb": 64}): its Worker's
    # labels, as ``set_labels`` last left them in this process.
    labels: dict[str, LabelValue] = Field(default_factory=dict)

    @field_validator("labels", mode="before")
    @classmethod
    def _usable_labels(cls, labels: Any) -> Any:
        """Labels the SDK would refuse are dropped, not the heartbeat: one refused would
        make a live worker look dead."""
        if not isinstance(labels, dict):
            return {}
        usable = {k: v for k, v in labels.items() if label_problem(k, v) is None}
        return dict(list(usable.items())[:WORKER_LABELS_MAX])


class TaskCancelRequest(_Frozen):
    """From the api to the scheduler: end this attempt of a task CANCELLED (no retry,
    its descendants never start), unless it has ended meanwhile. The api has told the
    workers to stop it (CancelTasks) in the same transaction."""

    run_id: str
    task_run_id: str
    task: str
    attempt: int
    reason: str


class RunAccepted(_Frozen):
    """From the api to the scheduler: a run to create (issue #17). The api checked the
    trigger (workflow version, input, labels, priority) and answered with ``run_id`` once
    RabbitMQ held this message; the scheduler creates the run, with a batch of others,
    and a redelivered message finds it there and creates nothing."""

    tenant_id: str
    workflow_id: str
    version_id: str
    run_id: str  # a uuid7: dated, so a reader can tell a run not created yet
    input: Any = None
    metadata: dict[str, str] | None = None
    desired_labels: dict[str, Any] | None = None
    priority: int | None = None
    trace: dict[str, str] | None = None  # the trigger span's context: the run span's parent

    @field_validator("workflow_id", "version_id", "run_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        return str(uuid.UUID(value))  # a malformed id is dead-lettered, never retried


class CancelTasks(_Frozen):
    """Broadcast to every worker process: stop these attempts, and never start them."""

    run_id: str
    task_run_ids: list[str]


class _ReportEnvelope(BaseModel):
    report: TaskReport = Field(discriminator="kind")


def decode_report(body: bytes) -> TaskReport:
    """Parse a worker report; raises pydantic.ValidationError on a malformed body."""
    return _ReportEnvelope.model_validate_json(b'{"report":' + body + b"}").report


class _ReportBatch(BaseModel):
    reports: list[Annotated[TaskReport | TaskEmitted, Field(discriminator="kind")]]


def encode_report_batch(reports: list[bytes]) -> bytes:
    """One message holding several reports, each already encoded (``model_dump_json``),
    in the order they were made: started, succeeded, failed or emitted, of any tasks."""
    return b'{"reports":[' + b",".join(reports) + b"]}"


def decode_report_batch(body: bytes) -> tuple[list[TaskReport], list[TaskEmitted]]:
    """Parse a batch of reports into results and starts, and what tasks emitted, each in
    its order; raises pydantic.ValidationError if any of them is malformed (the batch
    came from one worker process with one bug: the scheduler dead-letters it whole)."""
    reports: list[TaskReport] = []
    emitted: list[TaskEmitted] = []
    for report in _ReportBatch.model_validate_json(body).reports:
        if isinstance(report, TaskEmitted):
            emitted.append(report)
        else:
            reports.append(report)
    return reports, emitted


def dramatiq_envelope(queue_name: str, actor_name: str, message: TaskMessage) -> bytes:
    """Encode ``message`` as Dramatiq's JSON encoder would encode
    ``actor.message(message_dict)`` (compact, by orjson: non-ASCII text as UTF-8, not
    escaped), so a stock Dramatiq consumer can decode it. An
    execution timeout becomes Dramatiq's per-message ``time_limit``, so its TimeLimit
    middleware interrupts the task on the worker."""
    options: dict[str, Any] = {}
    if message.execution_timeout is not None:
        options["time_limit"] = int(message.execution_timeout * 1000)
    return fastjson.dumpb(
        {
            "queue_name": queue_name,
            "actor_name": actor_name,
            "args": [message.model_dump(mode="json")],
            "kwargs": {},
            "options": options,
            "message_id": f"{message.task_run_id}:{message.attempt}",
            "message_timestamp": int(time.time() * 1000),
        }
    )
