"""The api's approvals as JSON (issue #18, ``ctx.wait_for_approval``): what
``GET /api/v1/approvals`` lists, and the body of a decision. The SDK parses the same
models, so the two cannot drift."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from roost_core.statuses import ApprovalStatus


class ApprovalInfo(BaseModel):
    """A question a durable task asked a person, and its decision once made."""

    model_config = ConfigDict(extra="ignore")

    id: str
    run_id: str
    workflow: str
    task: str
    question: str
    details: Any = None
    status: ApprovalStatus
    created_at: datetime
    expires_at: datetime | None = None  # when it times out; None: never
    decided_at: datetime | None = None
    decided_by: str | None = Field(
        default=None, description="the name of the API token that decided"
    )
    reason: str | None = None


class ApprovalPage(BaseModel):
    """A page of approvals, newest first; ``next_cursor`` fetches the next page."""

    approvals: list[ApprovalInfo]
    next_cursor: str | None = None


class DecisionRequest(BaseModel):
    """``POST /api/v1/approvals/{approval_id}/approve`` or ``/reject`` (the body is
    optional): why, shown with the decision and returned to the task."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=1000)


class Decision(BaseModel):
    """A decision made: what the waiting task gets back (``roost.Approval``)."""

    id: str
    approved: bool
    by: str
    reason: str | None = None
    at: datetime  # when it was decided
