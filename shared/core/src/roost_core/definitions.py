"""Workflow definitions, defined once: a workflow's DAG of tasks with their retry,
timeout, rate-limit and concurrency policy, as the SDK registers it and the engine reads
it (roost_core.wire re-exports them with the messages that carry them)."""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from roost_core.crons import check_expression
from roost_core.expressions import compile_expression
from roost_core.labels import DesiredLabels
from roost_core.triggers import check_pattern

JSON = Any  # a JSON value: dict, list, str, int, float, bool or None


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# A whole number, as JSON Schema's "integer" means it: 3.0 is 3. The api validates bodies
# strictly (no "3", no true); without this, strictness would refuse 3.0 too.
Whole = Annotated[int, BeforeValidator(_whole)]


# A run's priority: 1 (low) to 3 (high) (roost_core.engine.priority).
Priority = Annotated[
    Whole,
    annotated_types.Ge(1),
    annotated_types.Le(3),
    # Stated outright: inside an optional field pydantic would write ge/le, not JSON
    # Schema's minimum/maximum.
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 3}, mode="validation"),
]


# Optional whole numbers in bounds, stated outright for the document (see Priority).
_KeyLimit = Annotated[
    Whole,
    annotated_types.Ge(1),
    annotated_types.Le(1_000_000_000),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 1_000_000_000}),
]
_Seconds = Annotated[
    Whole, annotated_types.Ge(1), WithJsonSchema({"type": "integer", "minimum": 1})
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Workflow and task names become part of RabbitMQ queue names and URLs: a safe alphabet
# (roost_core.dag checks it, naming the bad name; the api's document states it).
NAME_PATTERN = r"^[a-zA-Z0-9_][a-zA-Z0-9_.:-]{0,127}$"
RATE_LIMIT_KEY_RE = r"^[A-Za-z0-9_][A-Za-z0-9_.:/@-]{0,199}$"


class RateLimitUse(_Frozen):
    """Units of a rate-limit key a task takes: held while it runs (a concurrency key)
    or counted when it is admitted (a window key). The key is named (``key``, created
    with ``roost.rate_limits.put``) or computed from the run's input by a CEL expression
    (``dynamic_key``), in which case the key is created on first use with ``limit`` and
    ``window_seconds`` (None: a concurrency limit)."""

    key: str | None = Field(default=None, pattern=RATE_LIMIT_KEY_RE)
    dynamic_key: str | None = None
    units: Whole = Field(default=1, ge=1, le=1_000_000)
    limit: _KeyLimit | None = None
    window_seconds: _Seconds | None = None

    @model_validator(mode="after")
    def _check(self) -> RateLimitUse:
        if (self.key is None) == (self.dynamic_key is None):
            raise ValueError("a rate limit takes either a key or a dynamic_key expression")
        if self.dynamic_key is not None:
            compile_expression(self.dynamic_key)  # ValueError naming it
            if self.limit is None:
                raise ValueError(f"dynamic_key {self.dynamic_key!r} needs a limit")
            if self.units > self.limit:
                raise ValueError(
                    f"dynamic_key {self.dynamic_key!r} takes {self.units} units but its limit"
                    f" is {self.limit}: it could never run"
                )
        elif self.limit is not None or self.window_seconds is not None:
            raise ValueError(
                f"rate limit {self.key!r}: a named key's limit and window are set with"
                " roost.rate_limits.put, not on the task"
            )
        return self


class ConcurrencyDefinition(_Frozen):
    """At most ``max_runs`` runs at once per group, the group being the value of a CEL
    ``expression`` over the run's input. What happens to a run beyond that: it waits its
    turn, groups taking turns (``group_round_robin``); the oldest running run of its group
    is cancelled (``cancel_in_progress``); or it is cancelled itself (``cancel_newest``)."""

    expression: str
    max_runs: Whole = Field(default=1, ge=1, le=1_000_000)
    strategy: Literal["group_round_robin", "cancel_in_progress", "cancel_newest"] = (
        "group_round_robin"
    )

    @field_validator("expression")
    @classmethod
    def _compile(cls, expression: str) -> str:
        compile_expression(expression)
        return expression


class TaskDefinition(_Frozen):
    """One task of a workflow, as registered with the api, with its retry and timeout
    policy. Durations are in seconds."""

    name: str = Field(json_schema_extra={"pattern": NAME_PATTERN})
    parents: list[str] = Field(default_factory=list)
    retries: Whole = Field(default=0, ge=0, le=1000)
    backoff_initial_seconds: float = Field(default=1.0, ge=0)
    backoff_factor: float | None = Field(default=None, ge=1)
    backoff_max_seconds: float | None = Field(default=None, ge=0)
    execution_timeout_seconds: float | None = Field(default=None, gt=0)
    schedule_timeout_seconds: float | None = Field(default=None, gt=0)
    # Admission control (roost_ratelimiter): a task with none never waits for it.
    rate_limits: list[RateLimitUse] = Field(default_factory=list)
    # Task-level concurrency (issue #21): at most max_runs attempts of this task at once
    # per group of each expression; an attempt starts only when every group has room.
    # Beyond that, each expression's strategy applies to its group (attempts, not runs):
    # the attempt waits its turn, or is cancelled, or the group's oldest are cancelled.
    concurrency: list[ConcurrencyDefinition] = Field(default_factory=list)
    # Placement (issue #21): what the worker process that runs it should have, by label
    # key (roost_core.labels); a run may override them per key at its trigger.
    desired_labels: DesiredLabels = Field(default_factory=dict)

    @field_validator("concurrency")
    @classmethod
    def _check_concurrency(cls, limits: list[ConcurrencyDefinition]) -> list[ConcurrencyDefinition]:
        expressions = [c.expression for c in limits]
        if len(set(expressions)) != len(expressions):
            raise ValueError(f"task-level concurrency lists an expression twice: {expressions}")
        return limits

    @property
    def admitted(self) -> bool:
        """Whether the task's attempts wait for the ratelimiter's admission (and give
        back what they hold when they end): it has rate limits or concurrency."""
        return bool(self.rate_limits or self.concurrency)

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

    name: str = Field(json_schema_extra={"pattern": NAME_PATTERN})
    tasks: list[TaskDefinition] = Field(json_schema_extra={"minItems": 1})
    input_schema: dict[str, JSON] | None = None
    on_failure: TaskDefinition | None = None  # runs once, after the run has failed
    concurrency: ConcurrencyDefinition | None = None
    # Event-key patterns (roost_core.triggers): a pushed event whose key matches one
    # starts a run of the workflow's newest version, with the event's data as input.
    on_events: list[str] = Field(default_factory=list)
    # Cron expressions (roost_core.crons, UTC): the newest version's set is kept in the
    # crons table, each starting a run with ``cron_input`` at every fire time.
    on_crons: list[str] = Field(default_factory=list)
    cron_input: JSON = None
    # Sticky runs (issue #21): every task of a run goes to the worker process that took
    # its first one. "hard": only there (the run's tasks fail if that process is gone);
    # "soft": there while it lives and has a free slot, else anywhere.
    sticky: Literal["hard", "soft"] | None = None
    # A run's priority when its trigger gives none (issue #21): 1 (low) to 3 (high).
    default_priority: Priority | None = None

    @field_validator("on_crons")
    @classmethod
    def _check_crons(cls, expressions: list[str]) -> list[str]:
        checked = [check_expression(e) for e in expressions]  # ValueError naming it
        if len(set(checked)) != len(checked):
            raise ValueError(f"on_crons {expressions!r} lists an expression twice")
        return checked

    @field_validator("on_events")
    @classmethod
    def _check_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            check_pattern(pattern)  # ValueError naming the bad pattern
        return patterns

    @cached_property
    def by_name(self) -> dict[str, TaskDefinition]:
        """Tasks by name, the on_failure handler included."""
        found = {t.name: t for t in self.tasks}
        if self.on_failure is not None:
            found[self.on_failure.name] = self.on_failure
        return found

    def version_hash(self) -> str:
        """A stable hash of the definition: equal definitions share a version."""
        data = self.model_dump(mode="json")
        if not data["on_events"]:
            # Definitions from before event triggers keep the version they had.
            del data["on_events"]
        for task in [*data["tasks"], data["on_failure"] or {}]:
            if not task.get("rate_limits", True):
                del task["rate_limits"]  # likewise for rate limits and concurrency
            if not task.get("concurrency", True):
                del task["concurrency"]
            if not task.get("desired_labels", True):
                del task["desired_labels"]
        if data["concurrency"] is None:
            del data["concurrency"]
        if data["sticky"] is None:
            del data["sticky"]
        if data["default_priority"] is None:
            del data["default_priority"]
        if not data["on_crons"] and data["cron_input"] is None:
            del data["on_crons"], data["cron_input"]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
