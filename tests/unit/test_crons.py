"""Cron expressions and when they fire (roost_core.crons, roost_core.engine.fire): the
pure decisions behind issue #19's schedules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from roost_core import crons
from roost_core.engine.fire import DueCron, plan_fires

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "expression, field",
    [
        ("61 * * * *", "bad minute"),
        ("* 24 * * *", "bad hour"),
        ("* * 32 * *", "bad day-of-month"),
        ("* * * 13 *", "bad month"),
        ("* * * * 8", "bad day-of-week"),
        ("60 * * * * *", "bad second"),
        ("* * *", "wrong number of fields"),
    ],
)
def test_a_bad_expression_is_refused_naming_its_field(expression: str, field: str) -> None:
    with pytest.raises(crons.CronExpressionError) as err:
        crons.check_expression(expression)
    assert field in str(err.value) and repr(expression) in str(err.value)


def test_aliases_spaces_and_a_seconds_field() -> None:
    assert crons.check_expression("@hourly") == "0 * * * *"
    assert crons.check_expression("@DAILY") == "0 0 * * *"
    assert crons.check_expression("  */5   * * * * ") == "*/5 * * * *"
    assert crons.check_expression("*/2 * * * * *") == "*/2 * * * * *"
    with pytest.raises(crons.CronExpressionError, match="unknown alias"):
        crons.check_expression("@every_5m")
    # A date no month has is refused too (cronsim's check).
    with pytest.raises(crons.CronExpressionError, match="bad day-of-month"):
        crons.check_expression("0 0 30 2 *")


def test_time_zones_and_catch_up_are_checked_by_name() -> None:
    assert crons.check_timezone("Europe/Berlin") == BERLIN
    with pytest.raises(crons.CronExpressionError, match="'Mars/Olympus'"):
        crons.check_timezone("Mars/Olympus")
    with pytest.raises(crons.CronExpressionError, match="'sometimes'"):
        crons.check_catch_up("sometimes")


def test_next_fire_is_strictly_after() -> None:
    assert crons.next_fire("*/5 * * * * *", "UTC", s(0)) == s(5)
    assert crons.next_fire("*/5 * * * * *", "UTC", s(4.5)) == s(5)
    assert crons.next_fire("0 * * * *", "UTC", s(0)) == s(3600)


def test_a_time_on_time_fires_and_the_next_moves_past_now() -> None:
    fires = crons.due_fires("* * * * * *", "UTC", s(10), s(10.2), "none", grace=5)
    assert fires.fire_at == [s(10)] and fires.next_at == s(11) and fires.missed == 0
    # A busy scheduler, two seconds late: both times are on time, none is skipped.
    fires = crons.due_fires("* * * * * *", "UTC", s(10), s(12.5), "none", grace=5)
    assert fires.fire_at == [s(10), s(11), s(12)] and fires.next_at == s(13)
    # Not yet due.
    fires = crons.due_fires("* * * * * *", "UTC", s(20), s(12.5), "all", grace=5)
    assert fires.fire_at == [] and fires.next_at == s(20)


@pytest.mark.parametrize(
    "policy, fired, missed",
    [
        # Down from 0 s to 10.3 s, grace 2 s: 0..8 missed (9 times), 9 and 10 on time.
        ("all", [s(i) for i in range(11)], 0),
        ("latest", [s(8), s(9), s(10)], 8),
        ("none", [s(9), s(10)], 9),
    ],
)
def test_missed_times_follow_the_catch_up_policy(
    policy: crons.CatchUp, fired: list[datetime], missed: int
) -> None:
    fires = crons.due_fires("* * * * * *", "UTC", s(0), s(10.3), policy, grace=2)
    assert fires.fire_at == fired
    assert fires.missed == missed and not fires.capped
    assert fires.next_at == s(11)


def test_catching_up_all_is_capped_to_the_latest_missed_times() -> None:
    # A week down with a cron every second: only the latest 100 missed times fire,
    # found backwards from now (never 600,000 steps).
    now = s(7 * 86400 + 0.5)
    fires = crons.due_fires("* * * * * *", "UTC", s(0), now, "all", grace=0)
    assert len(fires.fire_at) == 100 and fires.capped and fires.missed >= 1
    assert fires.fire_at[-1] == s(7 * 86400) and fires.fire_at[0] == s(7 * 86400 - 99)


def test_a_daily_cron_across_both_dst_changes_in_berlin() -> None:
    # 02:30 does not exist on 29 March 2026: the cron fires once, just after the jump
    # (03:00 CEST); 02:30 happens twice on 25 October: it fires once (the first).
    spring = [
        t.astimezone(BERLIN)
        for t in _times("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 27, 12, tzinfo=BERLIN), 4)
    ]
    assert [t.isoformat() for t in spring] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    autumn = [
        t.astimezone(BERLIN)
        for t in _times("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 23, 12, tzinfo=BERLIN), 3)
    ]
    assert [t.isoformat() for t in autumn] == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def _times(expression: str, zone: str, after: datetime, n: int) -> list[datetime]:
    out = []
    for _ in range(n):
        after = crons.next_fire(expression, zone, after)
        out.append(after)
    return out


def _due(name: str, next_at: datetime, catch_up: crons.CatchUp = "latest") -> DueCron:
    return DueCron(
        id=f"id-{name}",
        tenant_id="tenant",
        workflow_id="wf",
        workflow="nightly",
        name=name,
        expression="* * * * * *",
        timezone="UTC",
        input={"scope": "all"},
        metadata={"team": "infra"},
        catch_up=catch_up,
        next_fire_at=next_at,
    )


def test_plan_fires_starts_a_run_per_time_saying_which_cron_and_time() -> None:
    plan = plan_fires([_due("a", s(1)), _due("b", s(5))], now=s(2.5), grace=10)
    assert [(x.source_id, x.due_at) for x in plan.starts] == [("id-a", s(1)), ("id-a", s(2))]
    first = plan.starts[0]
    assert first.kind == "cron" and first.input == {"scope": "all"}
    assert first.metadata == {
        "team": "infra",
        "roost.cron": "a",
        "roost.cron_id": "id-a",
        "roost.fire_at": s(1).isoformat(),
    }
    assert len({x.run_id for x in plan.starts}) == 2
    # Every due cron moves on; one that fired nothing keeps its last fire time.
    assert [(a.cron_id, a.next_at, a.last_at) for a in plan.advances] == [
        ("id-a", s(3), s(2)),
        ("id-b", s(5), None),
    ]
    assert plan.missed == []


def test_plan_fires_reports_missed_times() -> None:
    plan = plan_fires([_due("a", s(0), "none")], now=s(10.5), grace=1)
    assert [x.due_at for x in plan.starts] == [s(10)]
    assert [(m.cron_id, m.workflow, m.count, m.capped) for m in plan.missed] == [
        ("id-a", "nightly", 10, False)
    ]
