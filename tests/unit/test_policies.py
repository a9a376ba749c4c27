"""Retry backoff and duration parsing: pure logic."""

from __future__ import annotations

from datetime import timedelta

import pytest

import roost
from roost import Context, Roost
from roost._durations import seconds
from roost_core.wire import TaskDefinition


def test_backoff_grows_by_the_factor_up_to_the_maximum() -> None:
    task = TaskDefinition(
        name="t",
        retries=5,
        backoff_initial_seconds=1.0,
        backoff_factor=2.0,
        backoff_max_seconds=5.0,
    )
    assert [task.retry_delay(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_without_a_factor_the_delay_is_fixed() -> None:
    task = TaskDefinition(name="t", retries=3)
    assert [task.retry_delay(n) for n in (1, 2, 3)] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30, 30.0),
        (1.5, 1.5),
        (timedelta(minutes=2), 120.0),
        ("10m", 600.0),
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("2d", 172800.0),
    ],
)
def test_durations_read_as_seconds(value: object, expected: float) -> None:
    assert seconds(value, "x") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["ten minutes", "10", "5 parsecs", "", 0, -1, True])
def test_a_bad_duration_is_rejected_naming_the_option_and_value(value: object) -> None:
    with pytest.raises(roost.InvalidDefinitionError, match="execution_timeout"):
        seconds(value, "execution_timeout")  # type: ignore[arg-type]


def test_task_options_are_checked_when_the_task_is_declared() -> None:
    wf = Roost(api_url="http://127.0.0.1:1", token="x").workflow("opts")
    with pytest.raises(roost.InvalidDefinitionError, match="retries=-1"):

        @wf.task(retries=-1)
        def a(input: dict, ctx: Context) -> None: ...

    with pytest.raises(roost.InvalidDefinitionError, match="backoff_factor=0.5"):

        @wf.task(backoff_factor=0.5)
        def b(input: dict, ctx: Context) -> None: ...

    @wf.task(
        retries=3,
        backoff_factor=2.0,
        execution_timeout="10m",
        schedule_timeout=timedelta(minutes=5),
    )
    def c(input: dict, ctx: Context) -> None: ...

    (d,) = wf.definition().tasks
    assert (
        d.retries,
        d.backoff_factor,
        d.execution_timeout_seconds,
        d.schedule_timeout_seconds,
    ) == (3, 2.0, 600.0, 300.0)
