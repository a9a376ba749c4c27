"""With autovacuum off, the scheduler keeps the hot tables vacuumed and analyzed itself."""

from __future__ import annotations

import time

from harness import Stack


def test_the_scheduler_vacuums_the_outbox_and_analyzes_hot_tables_when_autovacuum_is_off(
    stack: Stack,
) -> None:
    autovacuum = stack.sql("SHOW autovacuum")[0][0]
    scheduler = stack.spawn(
        "scheduler-maintenance",
        "scheduler",
        extra_env={"ROOST_MAINTENANCE_INTERVAL_SECONDS": "0.5"},
    )
    try:
        deadline = time.monotonic() + 20
        seen: dict[str, object] = {}
        while time.monotonic() < deadline:
            rows = stack.sql(
                "SELECT relname, coalesce(last_vacuum, last_analyze) FROM pg_stat_user_tables"
                " WHERE relname IN ('outbox', 'runs', 'task_runs')"
            )
            seen = {str(name): when for name, when in rows}
            # The stack's own scheduler may have done a round first (the new one then
            # skips that round: another replica holds the lock), so wait for this
            # scheduler's own line too.
            logged = "hot tables maintained" in scheduler.log.read_text()
            if all(seen.get(t) for t in ("outbox", "runs", "task_runs")) and logged:
                break
            time.sleep(0.25)
        if autovacuum == "on":
            # Autovacuum's own work shows as last_autovacuum; the scheduler leaves it be.
            assert not any(seen.values()), seen
        else:
            assert all(seen.get(t) for t in ("outbox", "runs", "task_runs")), seen
            assert "hot tables maintained" in scheduler.log.read_text()
    finally:
        stack.stop_one(scheduler)
