"""The query parameters of the api's endpoints, one model per endpoint: the endpoint
parses its query into it (``roost_api.http.query_of``), and the OpenAPI document
declares its parameters from it (``roost_api.openapi``).

Page sizes and waits beyond their bound are read as the bound (a friendly cap, as most
APIs do), so their schemas state no maximum; anything else out of range is refused,
naming the value."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from roost_core import triggers
from roost_core.schedule_models import ScheduledStatus
from roost_core.statuses import ApprovalStatus, RunStatus

MAX_WAIT_SECONDS = 60.0
MAX_PAGE = 500
# The latest time a query may name: 9999-12-31, as unix seconds.
_LAST_SECOND = 253402300799


def _capped(low: int, high: int) -> AfterValidator:
    return AfterValidator(lambda v: min(max(v, low), high))


def _time(raw: Any) -> Any:
    """ISO 8601 (a time without a zone is UTC) or unix seconds."""
    if isinstance(raw, str):
        try:
            seconds = float(raw)
        except ValueError:
            parsed = datetime.fromisoformat(raw)  # ValueError: pydantic names the value
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        if not 0 <= seconds <= _LAST_SECOND:
            raise ValueError(f"unix seconds must be from 0 to {_LAST_SECOND}")
        return datetime.fromtimestamp(seconds, UTC)
    return raw


def _upper(raw: Any) -> Any:
    return raw.upper() if isinstance(raw, str) else raw


# An optional text filter: empty is the same as absent (a form's empty field).
Text = Annotated[str | None, BeforeValidator(lambda raw: raw or None)]
# A run id given as a filter; empty, as a browser's form sends an unfilled field, means
# not given (and the document says so, so that an empty one is not a schema violation).
OptionalId = Annotated[
    UUID | None,
    BeforeValidator(lambda raw: raw or None),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "string", "maxLength": 0}]},
        mode="validation",
    ),
]


Time = Annotated[
    datetime,
    BeforeValidator(_time),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "number", "minimum": 0, "maximum": _LAST_SECOND},
            ]
        }
    ),
]


def _limit(default: int) -> Any:
    return Field(
        default=default,
        description=f"page size, default {default}; more than {MAX_PAGE} is read as {MAX_PAGE}",
    )


Limit = Annotated[int, _capped(1, MAX_PAGE)]
Cursor = Annotated[Text, Field(default=None, description="next_cursor of the previous page")]


class _Query(BaseModel):
    # Unknown parameters are ignored, as browsers and proxies add their own.
    model_config = ConfigDict(extra="ignore")


class RunWait(_Query):
    wait: Annotated[float, _capped(0, int(MAX_WAIT_SECONDS))] = Field(
        default=0.0,
        allow_inf_nan=False,
        description="seconds to wait for the run to end (max 60: more is read as 60)",
    )


class RunListQuery(_Query):
    workflow: Text = Field(default=None, description="only this workflow's runs")
    status: Annotated[RunStatus | None, BeforeValidator(_upper)] = Field(
        default=None, description="only runs in this status"
    )
    since: Time | None = Field(
        default=None, description="created at or after (ISO 8601 or unix seconds)"
    )
    until: Time | None = Field(
        default=None, description="created before (ISO 8601 or unix seconds)"
    )
    parent_run_id: OptionalId = Field(
        default=None, description="only the runs triggered inside this run's tasks"
    )
    limit: Limit = _limit(50)
    cursor: Cursor = None


class LogQuery(_Query):
    task: Text = Field(default=None, description="only this task's lines")
    after: Annotated[int, _capped(0, 2**62)] = Field(
        default=0, description="next_after of the previous page"
    )
    limit: Limit = _limit(100)


class CancelledSince(_Query):
    since: float = Field(
        default=0.0, ge=0, le=_LAST_SECOND, allow_inf_nan=False, description="unix seconds"
    )


class ActivityQuery(_Query):
    minutes: Annotated[int, _capped(1, 1440)] = Field(
        default=60, description="how many minutes back, default 60 (at most 1440)"
    )


class VersionQuery(_Query):
    version: Text = Field(default=None, description="this version, not the newest")


class StatsQuery(_Query):
    hours: float = Field(
        default=24.0,
        gt=0,
        le=2160,
        allow_inf_nan=False,
        description="runs created this many hours back",
    )


class PushedEventQuery(_Query):
    key: Text = Field(
        default=None,
        description="only events with exactly this key",
        # Empty is no filter; anything else must be a key.
        json_schema_extra={"pattern": f"^(?:{triggers.KEY_PATTERN[1:-1]})?$"},
    )
    limit: Limit = _limit(50)
    cursor: Cursor = None


class ApprovalQuery(_Query):
    status: Annotated[ApprovalStatus | None, BeforeValidator(_upper)] = Field(
        default=None, description="only those in this status (PENDING: awaiting a decision)"
    )
    run_id: OptionalId = Field(default=None, description="only those of this run")
    decided: bool = Field(
        default=False,
        description="only those that ended: APPROVED, REJECTED, EXPIRED or CANCELLED",
    )
    limit: Limit = _limit(50)
    cursor: Cursor = None


class CronQuery(_Query):
    workflow: Text = Field(default=None, description="only this workflow's crons")
    limit: Limit = _limit(100)
    cursor: Cursor = None


class ScheduledQuery(_Query):
    workflow: Text = Field(default=None, description="only this workflow's")
    status: Annotated[ScheduledStatus | None, BeforeValidator(_upper)] = Field(
        default=None, description="only those in this status"
    )
    limit: Limit = _limit(100)
    cursor: Cursor = None
