"""``ctx.wait_for_any`` on the worker: what it asks the engine for, and what a replay
returns (the branch that fired, or the timer)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from durable_ctx import NOW, durable_ctx

from roost import DurableContext, EventCondition, Fired, NonDeterminismError
from roost._durable import WaitRequested
from roost_core.wire import DurableCall, EventWait

EVENT = {"id": "e1", "key": "ci:done", "data": {"pr": 7}, "created_at": "2026-12-07T09:00:00+00:00"}


_ctx = durable_ctx


def _any(ctx: DurableContext, **kwargs: Any) -> Fired:
    return asyncio.run(ctx.wait_for_any(**kwargs))


def test_a_new_any_of_wait_asks_for_each_event_branch_and_the_timer() -> None:
    with pytest.raises(WaitRequested) as waited:
        _any(
            _ctx(),
            events={"ci": EventCondition("ci:done", "payload.pr == 7"), "closed": "pr:closed"},
            sleep="1h",
        )
    wait = waited.value
    assert (wait.reason, wait.until) == ("any", NOW + 3600)
    assert wait.events == [
        EventWait(key="ci:done", filter="payload.pr == 7", since=NOW, name="ci"),
        EventWait(key="pr:closed", filter=None, since=NOW, name="closed"),
    ]
    assert wait.journal == [
        DurableCall(seq=0, kind="any", name="ci,closed,sleep", until=NOW + 3600)
    ]


def test_a_replay_returns_the_branch_whose_event_ended_the_wait() -> None:
    recorded = DurableCall(
        seq=0, kind="any", name="ci,closed", result={"fired": "ci", "event": EVENT}
    )
    got = _any(_ctx([recorded]), events={"ci": "ci:done", "closed": "pr:closed"})
    assert got.name == "ci"
    assert got.event is not None and got.event.payload == {"pr": 7} and got.event.id == "e1"


def test_the_timer_branch_fires_once_its_time_has_passed() -> None:
    recorded = DurableCall(seq=0, kind="any", name="ci,sleep", until=NOW + 10)
    got = _any(_ctx([recorded], now=NOW + 11), events={"ci": "ci:done"}, sleep=10)
    assert got == Fired(name="sleep", event=None)


def test_resumed_before_anything_fired_it_waits_on_for_the_rest() -> None:
    recorded = DurableCall(seq=0, kind="any", name="ci,sleep", until=NOW + 10)
    with pytest.raises(WaitRequested) as waited:
        _any(_ctx([recorded], now=NOW + 4), events={"ci": "ci:done"}, sleep=10)
    assert waited.value.until == NOW + 10
    # Events since the wait began still count.
    assert waited.value.events == [EventWait(key="ci:done", since=NOW, name="ci")]


def test_a_replay_with_other_branches_fails_naming_both() -> None:
    recorded = DurableCall(seq=0, kind="any", name="ci,sleep", until=NOW + 10)
    with pytest.raises(NonDeterminismError, match="'ci,sleep'.*'closed,sleep'"):
        _any(_ctx([recorded], now=NOW + 4), events={"closed": "pr:closed"}, sleep=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs a branch"),
        ({"sleep": 1, "until": NOW + 5}, "not both"),
        ({"events": {"sleep": "ci:done"}}, "other than 'sleep'"),
        ({"events": {"": "ci:done"}}, "non-empty"),
        ({"events": {"ci": "not a key!"}}, "branch .ci.: event key .not a key!."),
        ({"events": {"ci": EventCondition("ci:done", "payload.pr ==")}}, "filter"),
    ],
)
def test_bad_branches_are_refused_at_the_call(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _any(_ctx(), **kwargs)
