"""Roost: durable DAG workflows in plain Python.

```python
from roost import Roost, Context
roost = Roost()
wf = roost.workflow("task-execution")

@wf.task()
def check_deps(input: dict, ctx: Context) -> dict: ...
```
"""

from roost._approvals import Approval
from roost._approvals_client import Approvals
from roost._context import Context
from roost._crons import Crons
from roost._durable import DurableContext
from roost._errors import (
    ApiUnavailableError,
    AuthenticationError,
    BadRequestError,
    BrokerUnavailableError,
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    InvalidDefinitionError,
    InvalidInputError,
    NonDeterminismError,
    NonRetryableError,
    NotFoundError,
    RoostError,
    RoostWarning,
    RunCancelledError,
    RunFailedError,
    RunTimeoutError,
    TaskCancelledError,
    TaskCancelRequested,
    UnknownRunError,
    UnknownWorkflowError,
    WaitTimeoutError,
)
from roost._event_waits import EventCondition, Fired, WaitedEvent
from roost._events import Events
from roost._labels import Label
from roost._models import (
    Attempt,
    Cron,
    CronRun,
    PushedEvent,
    RateLimitInfo,
    Run,
    RunSummary,
    RunTrace,
    ScheduledRun,
    Span,
    SpanEvent,
    TaskRun,
)
from roost._ratelimits import Concurrency, RateLimit, RateLimits
from roost._roost import Roost
from roost._runs import RunRef, Runs
from roost._scheduled import ScheduledRuns
from roost._standalone import StandaloneTask, TaskRunRef
from roost._stream import EventStream, RunEvent
from roost._worker import Worker
from roost._workers import Workers
from roost._workflow import Task, Workflow
from roost._workflows import Workflows
from roost_core.approval_models import ApprovalInfo, Decision
from roost_core.statuses import RunStatus, TaskStatus

__all__ = [
    "ApiUnavailableError",
    "Approval",
    "ApprovalInfo",
    "Approvals",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BrokerUnavailableError",
    "ConfigurationError",
    "Concurrency",
    "Label",
    "ConflictError",
    "Cron",
    "CronRun",
    "Crons",
    "Context",
    "DatabaseUnavailableError",
    "Decision",
    "DurableContext",
    "EventStream",
    "Events",
    "InvalidDefinitionError",
    "InvalidInputError",
    "NonDeterminismError",
    "NonRetryableError",
    "NotFoundError",
    "PushedEvent",
    "RateLimit",
    "RateLimitInfo",
    "RateLimits",
    "Roost",
    "RoostError",
    "RoostWarning",
    "Run",
    "RunCancelledError",
    "RunEvent",
    "RunFailedError",
    "RunRef",
    "RunStatus",
    "RunSummary",
    "RunTimeoutError",
    "RunTrace",
    "Runs",
    "ScheduledRun",
    "ScheduledRuns",
    "Span",
    "SpanEvent",
    "StandaloneTask",
    "Task",
    "TaskCancelledError",
    "TaskCancelRequested",
    "TaskRun",
    "TaskRunRef",
    "TaskStatus",
    "UnknownRunError",
    "UnknownWorkflowError",
    "WaitedEvent",
    "EventCondition",
    "Fired",
    "WaitTimeoutError",
    "Worker",
    "Workers",
    "Workflow",
    "Workflows",
]
