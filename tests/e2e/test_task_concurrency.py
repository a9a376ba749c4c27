"""Task-level concurrency with several keys (issue #21): a task carrying two concurrency
expressions (2 per user, 8 overall) starts only when both groups have room. Across 4
worker processes x 8 threads, the overlaps computed from the recorded start and end
times never exceed either cap, and both caps are reached."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from harness import Stack


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        now += step
        most = max(most, now)
    return most


def test_two_concurrency_keys_never_over_admit_across_four_worker_processes(
    stack: Stack, flows: ModuleType
) -> None:
    worker = stack.start_worker("roost_testapps.flows:cc_workers", processes=4, threads=8)
    try:
        users = [f"u{i}" for i in range(6)]  # 6 users x 2 > 8: the overall cap binds
        refs = flows.task_cc.run_many([{"user": users[i % 6]} for i in range(60)])
        outs: list[dict[str, Any]] = [r.result(timeout=120)["call_model"] for r in refs]
    finally:
        worker.stop()

    overall = _most_at_once([(o["start"], o["end"]) for o in outs])
    per_user = {
        u: _most_at_once([(o["start"], o["end"]) for o in outs if o["user"] == u]) for u in users
    }
    assert overall == 8, f"at most 8 at once overall, and the cap was reached: {overall}"
    assert max(per_user.values()) == 2, per_user
    limits = {r["key"]: r for r in stack.api_get("/api/v1/rate-limits")["rate_limits"]}
    key = "task-concurrency:t-task-cc:call_model:1:all"
    assert limits[key]["limit"] == 8 and limits[key]["units_in_use"] == 0
