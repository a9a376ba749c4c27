"""When the scheduler (autovacuum off) analyzes a hot table: autovacuum's own rule, with
a per-table share (roost_scheduler.maintenance.to_analyze)."""

from __future__ import annotations

from roost_scheduler.maintenance import THRESHOLD, TableChanges, to_analyze


def test_a_table_never_analyzed_is_analyzed_once_a_few_rows_changed() -> None:
    assert to_analyze([TableChanges("runs", -1.0, THRESHOLD - 1)]) == []
    assert to_analyze([TableChanges("runs", -1.0, THRESHOLD)]) == ["runs"]


def test_runs_and_task_runs_again_after_a_fifth_of_their_rows_changed() -> None:
    rows = 10_000.0
    quiet = [TableChanges("runs", rows, 1_000), TableChanges("task_runs", rows, 2_049)]
    assert to_analyze(quiet) == []
    busy = [TableChanges("runs", rows, 2_050), TableChanges("task_runs", rows, 40_000)]
    assert to_analyze(busy) == ["runs", "task_runs"]


def test_events_and_spans_only_once_they_have_doubled() -> None:
    rows = 100_000.0
    assert to_analyze([TableChanges("spans", rows, 60_000)]) == []
    assert to_analyze([TableChanges("events", rows, 100_050), TableChanges("spans", rows, 9)]) == [
        "events"
    ]


def test_an_empty_database_needs_nothing() -> None:
    assert to_analyze([TableChanges(t, 0.0, 0) for t in ("runs", "events")]) == []
