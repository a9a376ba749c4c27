"""How the dashboard shows durations and what started a run."""

from __future__ import annotations

import pytest

from roost_dashboard.formatting import duration, format_seconds, trigger


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.0, "0.00 s"),
        (0.4217, "0.42 s"),
        (12.34, "12.3 s"),
        (245.9, "4 m 05 s"),
        (7620, "2 h 07 m"),
    ],
)
def test_durations_are_exact_when_short_and_coarse_when_long(seconds: float, shown: str) -> None:
    assert format_seconds(seconds) == shown


def test_a_duration_needs_both_ends_and_is_never_negative() -> None:
    start = "2026-11-26T10:00:00.000000+00:00"
    assert duration(start, "2026-11-26T10:00:01.500000+00:00") == "1.50 s"
    assert duration(start, None) == "" and duration(None, start) == ""
    # Clocks of different hosts can disagree by a little: never a negative duration.
    assert duration(start, "2026-11-26T09:59:59.990000+00:00") == "0.00 s"


def test_a_run_started_by_an_event_names_its_key_and_any_other_run_the_api() -> None:
    assert trigger({"metadata": {"event_id": "e1", "event_key": "repo.push"}}) == "event repo.push"
    assert trigger({"metadata": {"repo": "beads"}}) == "api"
    assert trigger({"metadata": None}) == "api"


def test_times_are_shown_to_the_second_in_utc() -> None:
    from roost_dashboard.formatting import when

    assert when("2026-11-26T19:33:33.392666+00:00") == "2026-11-26 19:33:33Z"
    assert when("2026-11-26T20:33:33.9+01:00") == "2026-11-26 19:33:33Z"
    assert when(None) == "" and when("") == ""


def test_a_waiting_task_says_what_it_waits_for_and_until_when_in_utc() -> None:
    from roost_dashboard.formatting import wait

    until = 1796623803.75  # 2026-12-07 06:10:03.75 UTC
    assert wait({"reason": "sleep", "until": until}) == "sleep until 2026-12-07 06:10:03Z"
    assert wait({"reason": "event", "key": "ci:done"}) == "event ci:done"
    assert wait({"reason": "sleep", "until": None}) == "sleep"
    assert wait(None) == "" and wait({}) == ""
