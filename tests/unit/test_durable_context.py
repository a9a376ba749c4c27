"""DurableContext (roost._durable), alone: steps recorded once and replayed, sleeps that
suspend with the journal to report, and replays that diverge. No worker, no broker: a
fake clock and asyncio.run."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from durable_ctx import NOW, durable_ctx
from pydantic import BaseModel

from roost import InvalidDefinitionError, NonDeterminismError, NonRetryableError
from roost._durable import WaitRequested
from roost_core.wire import DurableCall

T = TypeVar("T")


_ctx = durable_ctx


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def step(seq: int, name: str, result: Any) -> DurableCall:
    return DurableCall(seq=seq, kind="step", name=name, result=result)


def sleep(seq: int, until: float) -> DurableCall:
    return DurableCall(seq=seq, kind="sleep", name="sleep", until=until)


class Counter:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append((*args, *sorted(kwargs.items())))
        return {"n": len(self.calls), "args": list(args)}


def test_a_new_step_calls_its_function_once_and_records_its_result() -> None:
    ctx, fn = _ctx(), Counter()
    assert run(ctx.step("open-pr", fn, "main", name="x")) == {"n": 1, "args": ["main"]}
    assert fn.calls == [("main", ("name", "x"))]  # name= goes to fn, not to step
    assert ctx.seq == 1
    assert ctx.durable_calls == [step(0, "open-pr", {"n": 1, "args": ["main"]})]


def test_a_replayed_step_returns_its_recorded_result_without_calling_the_function() -> None:
    ctx, fn = _ctx([step(0, "open-pr", {"n": 7})]), Counter()
    got = run(ctx.step("open-pr", fn))
    assert got == {"n": 7} and fn.calls == []
    got["n"] = 8  # the task may change what it got; the record stays as it was
    assert ctx.durable_calls == [step(0, "open-pr", {"n": 7})]
    # Past the journal, steps run again.
    assert run(ctx.step("next", fn)) == {"n": 1, "args": []}
    assert [c.seq for c in ctx.durable_calls] == [0, 1]


def test_an_async_step_is_awaited_and_models_come_back_as_the_json_replays_get() -> None:
    class PR(BaseModel):
        n: int
        at: datetime

    @dataclasses.dataclass
    class Pair:
        a: int
        b: tuple[int, int]

    async def open_pr() -> PR:
        await asyncio.sleep(0)
        return PR(n=3, at=datetime(2024, 1, 2, tzinfo=UTC))

    ctx = _ctx()
    assert run(ctx.step("pr", open_pr)) == {"n": 3, "at": "2024-01-02T00:00:00Z"}
    assert run(ctx.step("pair", lambda: Pair(1, (2, 3)))) == {"a": 1, "b": [2, 3]}
    assert run(ctx.step("tuple", lambda: (1, 2))) == [1, 2]


def test_a_step_whose_result_is_not_json_fails_naming_the_step_and_records_nothing() -> None:
    ctx = _ctx()
    with pytest.raises(TypeError, match="step 'blob' of task 'land'"):
        run(ctx.step("blob", lambda: object()))
    with pytest.raises(TypeError, match="step 'nan'"):
        run(ctx.step("nan", lambda: float("nan")))
    assert ctx.durable_calls == []


def test_step_names_are_non_empty_strings() -> None:
    ctx = _ctx()
    with pytest.raises(ValueError, match="empty"):
        run(ctx.step("", Counter()))
    with pytest.raises(TypeError, match="string"):
        run(ctx.step(3, Counter()))  # type: ignore[arg-type]


def test_a_sleep_suspends_with_the_journal_received_the_new_calls_and_itself() -> None:
    ctx = _ctx([step(0, "open-pr", {"n": 7})])
    run(ctx.step("open-pr", Counter()))
    run(ctx.step("comment", lambda: "done"))
    with pytest.raises(WaitRequested) as waited:
        run(ctx.sleep_for("10m"))
    wait = waited.value
    assert not isinstance(wait, Exception)  # a task's `except Exception` lets it through
    assert (wait.until, wait.reason) == (NOW + 600, "sleep")
    assert wait.journal == [
        step(0, "open-pr", {"n": 7}),
        step(1, "comment", "done"),
        sleep(2, NOW + 600),
    ]
    assert "'land' waits (sleep) until 2023-11-14T22:23:20" in str(wait)


def test_sleep_for_takes_durations_and_sleep_until_aware_datetimes_or_unix_seconds() -> None:
    for duration in (90, 90.0, timedelta(seconds=90), "1m30s"):
        with pytest.raises(WaitRequested) as waited:
            run(_ctx().sleep_for(duration))
        assert waited.value.until == NOW + 90
    when = datetime.fromtimestamp(NOW + 5, UTC)
    for target in (when, when.astimezone(), NOW + 5, int(NOW) + 5):
        with pytest.raises(WaitRequested) as waited:
            run(_ctx().sleep_until(target))
        assert waited.value.until == NOW + 5
    with pytest.raises(ValueError, match="aware datetime"):
        run(_ctx().sleep_until(datetime(2030, 1, 1)))
    with pytest.raises(TypeError, match="unix seconds"):
        run(_ctx().sleep_until("tomorrow"))  # type: ignore[arg-type]
    with pytest.raises(InvalidDefinitionError, match="sleep_for"):
        run(_ctx().sleep_for(0))


def test_sleep_until_a_past_time_returns_at_once_and_is_recorded() -> None:
    ctx = _ctx()
    run(ctx.sleep_until(NOW - 1))
    run(ctx.step("after", lambda: 1))
    assert ctx.durable_calls == [sleep(0, NOW - 1), step(1, "after", 1)]


def test_a_replayed_sleep_that_is_over_returns_and_one_resumed_early_waits_again() -> None:
    journal = [step(0, "a", 1), sleep(1, NOW - 0.5)]
    ctx, fn = _ctx(journal), Counter()
    assert run(ctx.step("a", fn)) == 1
    run(ctx.sleep_for("10m"))  # over: the duration given now does not matter
    assert run(ctx.step("b", fn)) == {"n": 1, "args": []}

    early = _ctx([sleep(0, NOW + 30)])
    with pytest.raises(WaitRequested) as waited:
        run(early.sleep_for("10m"))
    assert waited.value.until == NOW + 30  # the recorded wake time, not a new one
    assert waited.value.journal == [sleep(0, NOW + 30)]


@pytest.mark.parametrize(
    ("journal", "call", "message"),
    [
        (
            [step(0, "a", 1), step(1, "open-pr", 2)],
            lambda ctx: ctx.sleep_for(5),
            "durable call #1: the task recorded step 'open-pr' but now makes sleep",
        ),
        (
            [step(0, "a", 1), step(1, "open-pr", 2)],
            lambda ctx: ctx.step("close-pr", Counter()),
            "durable call #1: the task recorded step 'open-pr' but now makes step 'close-pr'",
        ),
        (
            [step(0, "a", 1), sleep(1, NOW - 1)],
            lambda ctx: ctx.step("open-pr", Counter()),
            "durable call #1: the task recorded sleep but now makes step 'open-pr'",
        ),
    ],
)
def test_a_replay_that_makes_another_call_fails_naming_both(
    journal: list[DurableCall], call: Any, message: str
) -> None:
    ctx = _ctx(journal)
    run(ctx.step("a", Counter()))
    with pytest.raises(NonDeterminismError, match=message) as failed:
        run(call(ctx))
    assert isinstance(failed.value, NonRetryableError)  # a retry would diverge again
    assert "task 'land'" in str(failed.value)
    # Caught by the task, it is raised again by every later call and when it returns.
    with pytest.raises(NonDeterminismError, match=message):
        run(ctx.step("later", Counter()))
    with pytest.raises(NonDeterminismError, match=message):
        ctx._check_returned()


def test_a_replay_that_returns_before_making_every_recorded_call_fails() -> None:
    ctx = _ctx([step(0, "a", 1), step(1, "b", 2)])
    run(ctx.step("a", Counter()))
    with pytest.raises(NonDeterminismError, match="#1: the task recorded step 'b' but now returns"):
        ctx._check_returned()
    complete = _ctx([step(0, "a", 1)])
    run(complete.step("a", Counter()))
    complete._check_returned()  # every recorded call made: fine
