"""The pieces of ``DurableContext.wait_for_approval`` (roost._durable) that are not
replay: the decision a wait returns, and the checks of its arguments, made at the call
so that a bad question fails in the task, naming it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

# Longer questions belong in ``details``; a question is a line people read in a list.
MAX_QUESTION = 1000


class Approval(BaseModel):
    """A person's decision on what a durable task asked (``ctx.wait_for_approval``): the
    same on the first run as on every replay (it is recorded in the task's journal)."""

    model_config = ConfigDict(frozen=True)

    id: str  # the approval's id, as GET /api/v1/approvals lists it
    approved: bool  # False: rejected
    by: str  # the name of the API token that decided
    reason: str | None = None
    at: datetime  # when it was decided


def checked_question(question: object) -> str:
    """``question`` if it can be asked; TypeError or ValueError naming it if not."""
    if not isinstance(question, str):
        raise TypeError(f"wait_for_approval's question is a string, not {question!r}")
    if not question.strip():
        raise ValueError("wait_for_approval's question must not be empty: people read it")
    if len(question) > MAX_QUESTION or "\x00" in question:
        raise ValueError(
            f"wait_for_approval's question {question[:40]!r}... is longer than "
            f"{MAX_QUESTION} characters or holds a NUL: put long text in details="
        )
    return question


def decided(result: Any) -> Approval:
    """The decision recorded as a wait's result ({id, approved, by, reason, at})."""
    return Approval.model_validate(result)
