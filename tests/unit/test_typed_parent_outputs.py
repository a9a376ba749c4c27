"""``ctx.task_output(parent)`` (issue #20) returns the parent's output as the parent's
return annotation types it: a pydantic model or a dataclass is rebuilt from the JSON
the parent reported (datetimes included); by name, or from a parent annotated otherwise
or not at all, it stays the JSON value."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from roost import Context, Roost
from roost_core.wire import TaskMessage


class Plan(BaseModel):
    steps: list[str]
    due: datetime


@dataclasses.dataclass
class Score:
    value: int
    at: datetime


DUE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
# What the parents reported, as JSON: what a child's task message carries.
OUTPUTS: dict[str, Any] = {
    "plan": {"steps": ["clone", "test"], "due": "2026-01-02T03:04:05Z"},
    "score": {"value": 7, "at": "2026-01-02T03:04:05Z"},
    "raw": {"any": ["json"]},
    "bare": [1, 2],
}

client = Roost(api_url="http://127.0.0.1:1", token="unused")
wf = client.workflow("typed-parents")


@wf.task()
def plan(input: dict, ctx: Context) -> Plan:
    raise NotImplementedError


@wf.task()
async def score(input: dict, ctx: Context) -> Score:
    raise NotImplementedError


@wf.task()
def raw(input: dict, ctx: Context) -> dict:
    raise NotImplementedError


@wf.task()
def bare(input: dict, ctx: Context):  # no return annotation
    raise NotImplementedError


@wf.task(parents=[plan, score, raw, bare])
def child(input: dict, ctx: Context) -> None: ...


def _context(outputs: dict[str, Any]) -> Context:
    message = TaskMessage(
        run_id="r1",
        task_run_id="tr1",
        workflow=wf.name,
        task="child",
        attempt=1,
        input={},
        parent_outputs=outputs,
    )
    return Context(message, "w@h:1")


def test_the_output_is_what_the_parents_return_annotation_makes_of_it() -> None:
    ctx = _context(OUTPUTS)

    assert ctx.task_output(plan) == Plan(steps=["clone", "test"], due=DUE)
    assert ctx.task_output(score) == Score(value=7, at=DUE)  # an async parent too
    # By name, or from a parent annotated otherwise (or not at all): the JSON value.
    assert ctx.task_output("plan") == OUTPUTS["plan"]
    assert ctx.task_output(raw) == {"any": ["json"]}
    assert ctx.task_output(bare) == [1, 2]


def test_an_output_that_does_not_fit_its_annotation_raises_naming_the_field() -> None:
    ctx = _context({**OUTPUTS, "plan": {"steps": ["clone"]}})

    with pytest.raises(ValidationError, match="due"):
        ctx.task_output(plan)
    assert ctx.task_output("plan") == {"steps": ["clone"]}
