"""What a child run takes of its parent run's metadata (roost_core.metadata.inherited)."""

from __future__ import annotations

from roost_core.metadata import inherited


def test_a_child_run_inherits_its_parents_own_metadata_not_what_started_the_parent() -> None:
    parent = {
        "team": "ops",
        "roost.cron_id": "c1",
        "roost.cron": "0 * * * *",
        "roost.scheduled_id": "s1",
        "event_id": "e1",
        "event_key": "ci:done",
    }
    assert inherited(parent) == {"team": "ops"}
