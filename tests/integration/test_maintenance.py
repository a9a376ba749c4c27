"""With autovacuum off, the scheduler keeps the hot tables vacuumed and analyzed itself:
a table is analyzed within seconds of changing enough, not at the next round."""

from __future__ import annotations

import time
from types import ModuleType

import pytest

from harness import Stack
from roost import Roost
from roost_scheduler.maintenance import SCALE, THRESHOLD


def _maintained(stack: Stack) -> dict[str, object]:
    rows = stack.sql(
        "SELECT relname, coalesce(last_vacuum, last_analyze) FROM pg_stat_user_tables"
        " WHERE relname IN ('outbox', 'runs', 'task_runs')"
    )
    return {str(name): when for name, when in rows}


def _after(when: object, since: float) -> bool:
    return when is not None and when.timestamp() >= since  # type: ignore[attr-defined]


def test_the_scheduler_vacuums_the_outbox_when_autovacuum_is_off(stack: Stack) -> None:
    autovacuum = stack.sql("SHOW autovacuum")[0][0]
    scheduler = stack.spawn(
        "scheduler-vacuum",
        "scheduler",
        extra_env={"ROOST_MAINTENANCE_INTERVAL_SECONDS": "0.5"},
    )
    try:
        deadline = time.monotonic() + 20
        seen: dict[str, object] = {}
        while time.monotonic() < deadline:
            seen = _maintained(stack)
            # The stack's own scheduler may have done a round first (the new one then
            # skips that round: another replica holds the lock), so wait for this
            # scheduler's own line too.
            logged = "hot tables maintained" in scheduler.log.read_text()
            if seen.get("outbox") and logged:
                break
            time.sleep(0.25)
        if autovacuum == "on":
            # Autovacuum's own work shows as last_autovacuum; the scheduler leaves it be.
            assert not any(seen.values()), seen
        else:
            assert seen.get("outbox"), seen
            assert "hot tables maintained" in scheduler.log.read_text()
    finally:
        stack.stop_one(scheduler)


@pytest.mark.filterwarnings("ignore::roost.RoostWarning")  # no worker serves the probe
def test_tables_that_changed_are_analyzed_within_seconds_not_at_the_next_round(
    stack: Stack, flows: ModuleType
) -> None:
    """The default round is 30 s; enough new runs get runs and task_runs analyzed long
    before it (a never-analyzed runs table was scanned whole by every batch, #17)."""
    autovacuum = stack.sql("SHOW autovacuum")[0][0]
    if autovacuum == "on":
        pytest.skip("autovacuum is on: PostgreSQL analyzes by itself")
    wf = Roost().workflow("maintenance-probe")

    @wf.task()
    def only() -> None: ...

    # Enough changes for both tables, whatever the session's other tests wrote before:
    # each probe run is one row of runs and one of task_runs.
    rows = max(
        float(n)  # type: ignore[arg-type]
        for (n,) in stack.sql(
            "SELECT reltuples FROM pg_class WHERE relname IN ('runs', 'task_runs')"
        )
    )
    needed = THRESHOLD + int(SCALE["task_runs"] * max(rows, 0.0)) + 20
    before = time.time()
    for start in range(0, needed, 1000):
        count = min(1000, needed - start)
        assert len(wf.run_many([{} for _ in range(count)])) == count
    # PostgreSQL's change counters reach pg_stat up to ~10 s late (an idle backend
    # flushes its pending counts on a timer), then the scheduler looks every 2 s.
    deadline = time.monotonic() + 25
    seen: dict[str, object] = {}
    while time.monotonic() < deadline:
        seen = _maintained(stack)
        if _after(seen.get("runs"), before) and _after(seen.get("task_runs"), before):
            break
        time.sleep(0.25)
    assert _after(seen.get("runs"), before), seen
    assert _after(seen.get("task_runs"), before), seen
