"""Prometheus /metrics on every service: parseable, and counters that move by exactly
the runs and attempts completed."""

from __future__ import annotations

import time
from types import ModuleType

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness import Process, Stack


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _get(
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def test_scheduler_counters_move_by_exactly_the_runs_and_attempts_completed(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    url = f"http://127.0.0.1:{stack.scheduler_metrics_port}/metrics"
    before = _scrape(url)
    refs = flows.chain.run_many([{"task_id": f"m-{i}"} for i in range(5)])
    for ref in refs:
        ref.result(timeout=60)
    failed = flows.failing.run({}, wait_for_result=False)
    assert flows.roost.runs.wait(failed.id, timeout=60).status == "FAILED"
    time.sleep(0.3)  # counted right after the commit that ended them
    after = _scrape(url)

    def delta(name: str, **labels: str) -> float:
        return _get(after, name, **labels) - _get(before, name, **labels)

    runs = "roost_runs_finished_total"
    attempts = "roost_task_attempts_total"
    assert delta(runs, workflow="t-chain", status="succeeded") == 5
    assert delta(attempts, workflow="t-chain", outcome="succeeded") == 20  # 5 runs x 4 tasks
    assert delta("roost_task_duration_seconds_count", workflow="t-chain") == 20
    assert delta(runs, workflow="t-failing", status="failed") == 1
    assert delta(attempts, workflow="t-failing", outcome="failed") == 1
    assert delta("roost_scheduler_batch_size_count") >= 1


def test_the_api_counts_triggers_and_cancellations_and_reports_fleet_gauges(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    url = f"{stack.api_url}/metrics"
    before = _scrape(url)
    flows.chain.run({"task_id": "m-api"}, timeout=60)
    slow = flows.diamond.run({"seed": 1}, wait_for_result=False)
    flows.roost.runs.cancel(slow.id)
    time.sleep(6)  # a scrape re-reads the gauges at most every 5 s
    after = _scrape(url)

    assert (
        _get(after, "roost_runs_triggered_total", workflow="t-chain")
        - _get(before, "roost_runs_triggered_total", workflow="t-chain")
        == 1
    )
    assert (
        _get(after, "roost_runs_finished_total", workflow="t-diamond", status="cancelled")
        - _get(before, "roost_runs_finished_total", workflow="t-diamond", status="cancelled")
        == 1
    )
    assert _get(after, "roost_workers_alive") >= 1
    assert (
        _get(after, "roost_worker_slots", state="free")
        + _get(after, "roost_worker_slots", state="busy")
        >= 8
    )
    assert ("roost_outbox_depth", ()) in after


def test_the_gateway_and_the_ratelimiter_serve_metrics(stack: Stack) -> None:
    gateway = _scrape(f"{stack.gateway_url}/metrics")
    assert ("roost_gateway_subscribers", ()) in gateway
    port = stack.env["ROOST_RATELIMITER_METRICS_PORT"]
    ratelimiter = _scrape(f"http://127.0.0.1:{port}/metrics")
    assert ("roost_ratelimiter_pass_seconds_count", ()) in ratelimiter


def test_the_api_reports_the_attempts_ready_on_each_workflows_queue(
    stack: Stack, flows: ModuleType
) -> None:
    """What KEDA scales workers on: a workflow no worker serves piles up its ready
    attempts on its queue, and the api reports exactly that many."""
    wf = flows.roost.workflow("m-unworked")

    @wf.task()
    def only(input: dict, ctx: object) -> dict:
        return {}

    wf.register()
    refs = [wf.run({"i": i}, wait_for_result=False) for i in range(3)]
    queue = f"{stack.env['ROOST_NAMESPACE']}.work.m-unworked"
    try:
        deadline = time.monotonic() + 20
        while True:
            ready = _get(
                _scrape(f"{stack.api_url}/metrics"),
                "roost_tasks_ready",
                workflow="m-unworked",
                queue=queue,
            )
            if ready == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert ready == 3
    finally:
        for ref in refs:
            flows.roost.runs.cancel(ref.id)
