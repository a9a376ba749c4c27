"""A thousand durable tasks sleeping at once on one worker process with 4 slots (issue
#18): while they sleep the same worker runs 100 ordinary tasks, and then every one of
them resumes, once, its step having run once."""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType

from harness import Stack


def test_a_thousand_sleeping_durable_tasks_hold_no_slot_and_all_resume(
    stack: Stack, flows: ModuleType, tmp_path: Path
) -> None:
    worker = stack.start_worker("roost_testapps.flows:sleepers", processes=1, threads=4)
    try:
        marker = tmp_path / "marks"
        sleepers = flows.durable_sleep.run_many(
            [{"marker": str(marker), "seconds": 12} for _ in range(1000)]
        )
        deadline = time.monotonic() + 60
        while len(marker.read_text().splitlines() if marker.exists() else []) < 1000:
            assert time.monotonic() < deadline, "the sleepers never all began their sleep"
            time.sleep(0.2)
        began = time.time()
        # All thousand sleep: the four slots are free for ordinary work meanwhile.
        quick = flows.durable_quick.run_many([{} for _ in range(100)])
        ended = [ref.result(timeout=60)["quick_one"]["t"] for ref in quick]
        woke = [ref.result(timeout=120)["durable_nap"] for ref in sleepers]

        earliest_wake = min(w["woke"] for w in woke)
        assert max(ended) < earliest_wake, "ordinary tasks waited for the sleepers"
        assert max(ended) - began < 12, "the ordinary tasks did not run while they slept"
        assert all(w["attempt"] == 2 for w in woke)  # resumed once each
        assert all(w["woke"] - w["marked"]["t"] >= 12 for w in woke)
        assert len(marker.read_text().splitlines()) == 1000  # each step ran once
    finally:
        worker.stop()
