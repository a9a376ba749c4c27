"""The HTTP shapes of schedules (issue #19): crons and scheduled runs, what the api
accepts and answers, shared with the SDK as roost_core.api_models is."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from roost_core.crons import CATCH_UP
from roost_core.metadata import Metadata

# A scheduled run's delay: at most ten years away.
MAX_DELAY_SECONDS = 10 * 365 * 86400.0
ScheduledStatus = Literal["SCHEDULED", "FIRED", "CANCELLED", "FAILED"]


def _no_reserved_keys(metadata: dict[str, str]) -> dict[str, str]:
    for key in metadata:
        if key.startswith("roost."):
            raise ValueError(
                f"metadata key {key!r}: keys starting with 'roost.' are set by Roost "
                "(roost.cron, roost.cron_id, roost.fire_at, roost.scheduled_id)"
            )
    return metadata


class CronCreate(BaseModel):
    """``POST /api/v1/crons``."""

    model_config = ConfigDict(extra="forbid")
    workflow: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=200)
    expression: str = Field(min_length=1, max_length=200)
    timezone: str = "UTC"
    input: Any = Field(default_factory=dict)
    metadata: Metadata = Field(default_factory=dict)
    # Checked by the api (roost_core.crons), naming a bad one.
    catch_up: str = Field(default="latest", json_schema_extra={"enum": list(CATCH_UP)})
    paused: bool = False

    @model_validator(mode="after")
    def _reserved(self) -> CronCreate:
        _no_reserved_keys(self.metadata)
        return self


class _When(BaseModel):
    """Exactly one of a time (with its zone) or a delay from now. Neither may be null:
    leave the other out."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["at"]}, {"required": ["delay_seconds"]}]},
    )
    at: Annotated[
        AwareDatetime | None, WithJsonSchema({"type": "string", "format": "date-time"})
    ] = None
    delay_seconds: Annotated[
        float | None,
        WithJsonSchema({"type": "number", "minimum": 0, "maximum": MAX_DELAY_SECONDS}),
    ] = Field(default=None, ge=0, le=MAX_DELAY_SECONDS, allow_inf_nan=False)

    @field_validator("at", "delay_seconds", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null: leave it out")
        if isinstance(value, str):
            # Parsed here: after a "before" validator, strict validation would take
            # only a datetime object, and the body is JSON.
            return datetime.fromisoformat(value)
        return value

    @model_validator(mode="after")
    def _one(self) -> _When:
        if (self.at is None) == (self.delay_seconds is None):
            raise ValueError("give exactly one of 'at' (ISO 8601 with a zone) or 'delay_seconds'")
        return self


class ScheduleCreate(_When):
    """``POST /api/v1/scheduled``: a run of ``workflow`` to start once, later."""

    workflow: str = Field(min_length=1)
    input: Any = Field(default_factory=dict)
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="after")
    def _reserved(self) -> ScheduleCreate:
        _no_reserved_keys(self.metadata)
        return self


class Reschedule(_When):
    """``PATCH /api/v1/scheduled/{id}``: a new time for a run not yet fired."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class CronRun(_Model):
    """A run a cron started: its fire time and how it is doing."""

    fire_at: datetime
    run_id: str
    status: str | None = None  # None: the run was deleted (retention)


class Cron(_Model):
    """A cron: ``declared`` by the workflow's ``on_crons`` or made at run time."""

    id: str
    workflow: str
    name: str
    expression: str
    timezone: str
    input: Any = None
    metadata: dict[str, str] = {}
    catch_up: Literal["latest", "all", "none"]
    declared: bool
    paused: bool
    next_fire_at: datetime
    last_fire_at: datetime | None = None
    created_at: datetime
    recent_runs: list[CronRun] = []  # newest first (only when one cron is read)


class ScheduledRun(_Model):
    """A run to start once at ``trigger_at``; ``run_id`` once it has fired. FAILED: it
    could not start one (``error`` says why; the workflow's newest version refused it)."""

    id: str
    workflow: str
    trigger_at: datetime
    input: Any = None
    metadata: dict[str, str] = {}
    status: ScheduledStatus
    run_id: str | None = None
    created_at: datetime
    fired_at: datetime | None = None
    error: str | None = None  # FAILED: why it could not start a run
