"""Fleet-wide rate limits through the real ratelimiter, with real workers."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

import roost
from harness import Process, Stack


@pytest.fixture(scope="module")
def limited_workers(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    """4 worker processes x 8 threads: far more slots than any limit."""
    flows.roost.rate_limits.put("rl-sessions", limit=3)
    flows.roost.rate_limits.put("rl-window", limit=20, duration="second")
    proc = stack.start_worker("roost_testapps.flows:limited", processes=4, threads=8, name="lim")
    yield proc
    proc.stop()


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def _wait_idle(flows: ModuleType, key: str, timeout: float = 30) -> roost.RateLimitInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = flows.roost.rate_limits.get(key)
        if (info.units_in_use == 0 and info.waiting == 0) or time.monotonic() > deadline:
            return info
        time.sleep(0.1)


def test_a_concurrency_key_of_3_never_has_more_than_3_holders_across_32_slots(
    flows: ModuleType, limited_workers: Process
) -> None:
    refs = flows.rl_sessions.run_many([{"seconds": 0.2} for _ in range(60)])
    results = [ref.result(timeout=120) for ref in refs]

    spans = [(r["session"]["began"], r["session"]["ended"]) for r in results]
    assert len(spans) == 60  # every run completed
    assert _max_overlap(spans) == 3  # never more than 3 at once, and the 3 were used
    info = _wait_idle(flows, "rl-sessions")
    assert (info.units_in_use, info.waiting, info.units_left) == (0, 0, 3)  # nothing leaked


def test_a_window_of_20_per_second_never_admits_more_than_20_in_any_second(
    stack: Stack, flows: ModuleType, limited_workers: Process
) -> None:
    before = time.time()
    refs = flows.rl_window.run_many([{} for _ in range(70)])
    for ref in refs:
        ref.result(timeout=120)

    rows = stack.sql(
        "SELECT extract(epoch FROM admitted_at) FROM rate_limit_admissions"
        " WHERE key = 'rl-window' AND admitted_at >= to_timestamp(%s) ORDER BY 1",
        before,
    )
    times = [float(str(r[0])) for r in rows]
    assert len(times) == 70
    worst = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert worst <= 20
    assert times[-1] - times[0] >= 3.0  # 70 at 20/s cannot take less than 3 windows


def test_a_task_asking_more_units_than_the_limit_or_an_unknown_key_fails_at_trigger(
    flows: ModuleType, limited_workers: Process
) -> None:
    with pytest.raises(roost.ConflictError, match=r"needs 5 units .*'rl-sessions'.* limit is 3"):
        flows.rl_greedy.run({}, wait_for_result=False)
    with pytest.raises(roost.ConflictError, match="rl-never-created"):
        flows.rl_unknown.run({}, wait_for_result=False)


def test_units_come_back_when_a_holder_fails_or_is_cancelled(
    flows: ModuleType, limited_workers: Process
) -> None:
    flows.roost.rate_limits.put("rl-sessions", limit=1)
    try:
        failing = flows.rl_sessions.run({"seconds": 0.1, "fail": True}, wait_for_result=False)
        long = flows.rl_sessions.run({"seconds": 30}, wait_for_result=False)
        waiting = flows.rl_sessions.run({"seconds": 0.1}, wait_for_result=False)
        assert flows.roost.runs.wait(failing.id, timeout=30).status == "FAILED"
        deadline = time.monotonic() + 30
        while flows.roost.runs.get(long.id).tasks[0].status != "RUNNING":
            assert time.monotonic() < deadline, "the long session never started"
            time.sleep(0.05)
        assert flows.roost.runs.get(waiting.id).tasks[0].status == "QUEUED"
        assert flows.roost.rate_limits.get("rl-sessions").waiting == 1

        flows.roost.runs.cancel(long.id)  # its unit comes back: the waiting run goes

        assert waiting.result(timeout=30)["session"]["ended"] > 0
    finally:
        flows.roost.rate_limits.put("rl-sessions", limit=3)
    info = _wait_idle(flows, "rl-sessions")
    assert (info.units_in_use, info.waiting) == (0, 0)


def test_raising_a_limit_admits_waiting_tasks_at_once(
    flows: ModuleType, limited_workers: Process
) -> None:
    flows.roost.rate_limits.put("rl-sessions", limit=1)
    try:
        refs = flows.rl_sessions.run_many([{"seconds": 1.0} for _ in range(4)])
        time.sleep(0.3)
        assert flows.roost.rate_limits.get("rl-sessions").waiting == 3
        flows.roost.rate_limits.put("rl-sessions", limit=4)
        spans = [
            (r["session"]["began"], r["session"]["ended"])
            for r in (ref.result(timeout=30) for ref in refs)
        ]
    finally:
        flows.roost.rate_limits.put("rl-sessions", limit=3)
    assert _max_overlap(spans) == 4  # the three waiting ones started beside the first


def test_rate_limits_over_http_and_the_cli(stack: Stack, flows: ModuleType) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    put = httpx.put(
        f"{stack.api_url}/api/v1/rate-limits/github-api",
        json={"limit": 100, "duration": "minute"},
        headers=headers,
        timeout=10,
    )
    assert put.status_code == 200
    assert put.json() == {
        **put.json(),
        "key": "github-api",
        "limit": 100,
        "window": "minute",
        "units_in_use": 0,
        "units_left": 100,
        "waiting": 0,
    }
    bad = httpx.put(
        f"{stack.api_url}/api/v1/rate-limits/github-api",
        json={"limit": 100, "duration": "fortnight"},
        headers=headers,
        timeout=10,
    )
    assert bad.status_code == 400 and "fortnight" in bad.json()["error"]["message"]
    zero = httpx.put(
        f"{stack.api_url}/api/v1/rate-limits/github-api",
        json={"limit": 0},
        headers=headers,
        timeout=10,
    )
    assert zero.status_code == 400 and "limit" in zero.json()["error"]["message"]
    assert stack.sql(
        "SELECT limit_value, window_seconds FROM rate_limits WHERE key = %s", "github-api"
    ) == [(100, 60)]

    stack.roost("rate-limits", "put", "cli-key", "7")
    listed = stack.roost("rate-limits", "list")
    assert "cli-key" in listed and "github-api" in listed
    assert flows.roost.rate_limits.get("cli-key").kind == "concurrency"
    with pytest.raises(roost.NotFoundError):
        flows.roost.rate_limits.get("no-such-key")


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_killing_the_ratelimiter_mid_load_over_admits_nothing_and_loses_nothing(
    stack: Stack, flows: ModuleType, limited_workers: Process
) -> None:
    (old,) = [p for p in stack.processes if p.name.startswith("ratelimiter")]
    refs = flows.rl_sessions.run_many([{"seconds": 0.2} for _ in range(40)])
    _wait_until(lambda: flows.roost.rate_limits.get("rl-sessions").units_in_use > 0, 30, "load")
    time.sleep(0.5)
    os.kill(old.pid, signal.SIGKILL)
    old.popen.wait(timeout=10)
    stack.processes.remove(old)
    time.sleep(1.0)  # holders finish meanwhile; waiters stay in PostgreSQL
    stack.spawn("ratelimiter-restarted", "ratelimiter")

    results = [ref.result(timeout=120) for ref in refs]

    spans = [(r["session"]["began"], r["session"]["ended"]) for r in results]
    assert len(spans) == 40
    assert _max_overlap(spans) <= 3
    info = _wait_idle(flows, "rl-sessions")
    assert (info.units_in_use, info.waiting) == (0, 0)


def test_a_killed_worker_gives_its_units_back(
    stack: Stack, flows: ModuleType, limited_workers: Process, tmp_path: Path
) -> None:
    flows.roost.rate_limits.put("rl-hold", limit=1)
    watcher = stack.spawn(
        "scheduler-rl-liveness",
        "scheduler",
        extra_env={"ROOST_WORKER_HEARTBEAT_TIMEOUT_SECONDS": "3"},
    )
    fast = {"ROOST_HEARTBEAT_INTERVAL_SECONDS": "0.5"}
    victim = stack.start_worker(
        "roost_testapps.flows:holder", processes=1, threads=2, name="holder-1", extra_env=fast
    )
    rescuer = None
    marker = tmp_path / "held"
    try:
        held = flows.rl_hold.run({"marker": str(marker), "first": 60}, wait_for_result=False)
        _wait_until(marker.exists, 30, "the holder to start")
        behind = flows.rl_hold.run({}, wait_for_result=False)
        time.sleep(0.5)
        assert flows.roost.rate_limits.get("rl-hold").waiting == 1

        os.killpg(victim.pid, signal.SIGKILL)  # the worker and its Dramatiq processes
        victim.popen.wait(timeout=10)
        # Silent for the heartbeat timeout: the attempt is lost and its unit comes back.
        _wait_until(lambda: flows.roost.runs.get(held.id).tasks[0].attempt == 2, 30, "reclaim")
        rescuer = stack.start_worker(
            "roost_testapps.flows:holder", processes=1, threads=2, name="holder-2", extra_env=fast
        )

        first, second = held.result(timeout=60), behind.result(timeout=60)
    finally:
        watcher.stop()
        victim.stop()
        if rescuer is not None:
            rescuer.stop()
    lost = flows.roost.runs.get(held.id).tasks[0].attempts[0]
    assert lost.error is not None and lost.error["type"] == "WorkerLost"
    assert int(marker.read_text()) not in (first["hold"]["pid"], second["hold"]["pid"])
    spans = [(first["hold"]["began"], first["hold"]["ended"])]
    spans.append((second["hold"]["began"], second["hold"]["ended"]))
    assert _max_overlap(spans) == 1
    info = _wait_idle(flows, "rl-hold")
    assert (info.units_in_use, info.waiting) == (0, 0)


@pytest.fixture(scope="module")
def concurrent_worker(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    proc = stack.start_worker("roost_testapps.flows:concurrent", processes=2, threads=16)
    yield proc
    proc.stop()


def test_dynamic_keys_limit_each_user_independently(
    stack: Stack, flows: ModuleType, concurrent_worker: Process
) -> None:
    inputs = [{"user_id": user, "seconds": 0.3} for _ in range(4) for user in ("ann", "bob")]
    results = [ref.result(timeout=60)["per_user"] for ref in flows.rl_peruser.run_many(inputs)]

    spans = {
        u: [(r["began"], r["ended"]) for r in results if r["user"] == u] for u in ("ann", "bob")
    }
    assert _max_overlap(spans["ann"]) == 1 and _max_overlap(spans["bob"]) == 1
    assert _max_overlap(spans["ann"] + spans["bob"]) == 2  # but the two users ran side by side
    rows = stack.sql("SELECT key, limit_value FROM rate_limits WHERE key IN ('ann', 'bob')")
    assert sorted(rows) == [("ann", 1), ("bob", 1)]  # created on first use


def test_a_dynamic_key_that_gives_no_key_is_refused_at_trigger(
    flows: ModuleType, concurrent_worker: Process
) -> None:
    with pytest.raises(roost.InvalidInputError, match="input.user_id"):
        flows.rl_peruser.run({"name": "no user id"}, wait_for_result=False)


def test_group_round_robin_runs_one_per_repo_and_interleaves_repos(
    flows: ModuleType, concurrent_worker: Process
) -> None:
    inputs = [{"repo": "alpha", "n": i, "seconds": 0.3} for i in range(4)]
    inputs += [{"repo": "beta", "n": i, "seconds": 0.3} for i in range(4)]
    results = [ref.result(timeout=60)["rr_step"] for ref in flows.cc_rr.run_many(inputs)]

    by_repo = {
        repo: sorted((r["began"], r["ended"]) for r in results if r["repo"] == repo)
        for repo in ("alpha", "beta")
    }
    assert _max_overlap(by_repo["alpha"]) == 1 and _max_overlap(by_repo["beta"]) == 1
    # beta did not wait for alpha's queue to drain: its runs went turn about with alpha's.
    assert by_repo["beta"][0][0] < by_repo["alpha"][1][0]
    assert by_repo["alpha"][0][0] < by_repo["beta"][1][0]
    assert _max_overlap(by_repo["alpha"] + by_repo["beta"]) == 2


def test_cancel_in_progress_cancels_the_older_run_of_the_group(
    flows: ModuleType, concurrent_worker: Process
) -> None:
    older = flows.cc_cip.run({"repo": "gamma", "seconds": 30}, wait_for_result=False)
    _wait_until(lambda: flows.roost.runs.get(older.id).status == "RUNNING", 30, "older to run")
    other = flows.cc_cip.run({"repo": "delta", "seconds": 0.2}, wait_for_result=False)

    newer = flows.cc_cip.run({"repo": "gamma", "seconds": 0.2}, wait_for_result=False)

    assert newer.result(timeout=30)["cip_step"]["repo"] == "gamma"
    ended = flows.roost.runs.wait(older.id, timeout=30)
    assert ended.status == "CANCELLED"
    assert ended.error is not None and "cancel_in_progress" in ended.error["message"]
    assert other.result(timeout=30)["cip_step"]["repo"] == "delta"  # another group: untouched


def test_cancel_newest_cancels_the_new_run_while_the_group_is_full(
    flows: ModuleType, concurrent_worker: Process
) -> None:
    first = flows.cc_newest.run({"repo": "eps", "seconds": 1.0}, wait_for_result=False)
    second = flows.cc_newest.run({"repo": "eps", "seconds": 0.1}, wait_for_result=False)
    elsewhere = flows.cc_newest.run({"repo": "zeta", "seconds": 0.1}, wait_for_result=False)

    assert first.result(timeout=30)["newest_step"]["repo"] == "eps"
    refused = flows.roost.runs.wait(second.id, timeout=10)
    assert refused.status == "CANCELLED"
    assert refused.error is not None and "cancel_newest" in refused.error["message"]
    assert elsewhere.result(timeout=30)["newest_step"]["repo"] == "zeta"
    later = flows.cc_newest.run({"repo": "eps", "seconds": 0.1}, timeout=30)  # room again
    assert later["newest_step"]["repo"] == "eps"
    info = flows.roost.rate_limits.get("concurrency:t-cc-newest:eps")
    assert (info.units_in_use, info.waiting, info.limit) == (0, 0, 1)


def test_a_bad_key_expression_is_refused_when_the_workflow_is_registered(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    bad_key = {
        "name": "t-bad-cel",
        "tasks": [{"name": "a", "rate_limits": [{"dynamic_key": "input.", "limit": 1}]}],
    }
    bad_group = {
        "name": "t-bad-cel",
        "tasks": [{"name": "a"}],
        "concurrency": {"expression": "user.repo", "max_runs": 1},
    }
    for definition, needle in ((bad_key, "input."), (bad_group, "user.repo")):
        resp = httpx.post(
            f"{stack.api_url}/api/v1/workflows", json=definition, headers=headers, timeout=10
        )
        assert resp.status_code in (400, 422), resp.text
        assert needle in resp.json()["error"]["message"]
    with pytest.raises(roost.InvalidDefinitionError, match="not valid CEL"):
        roost.RateLimit(dynamic_key="input.", limit=1)
