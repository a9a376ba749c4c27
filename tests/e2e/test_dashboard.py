"""The dashboard, first part: sign-in with an API token kept in an HttpOnly,
SameSite=Strict cookie; CSRF on what changes state; a Content-Security-Policy with no
third-party origin; the runs page (filters, metadata, search by id) and a run's page;
unknown runs say so. Real processes: the dashboard talks to the session's api."""

from __future__ import annotations

import importlib.metadata
import os
import re
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
from chromium import needs_chromium

from harness import Process, Stack


@pytest.fixture(scope="module")
def dashboard(stack: Stack) -> Iterator[str]:
    url, proc = stack.start_dashboard()
    yield url
    stack.stop_one(proc)


def _signed_in(dashboard: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=dashboard, timeout=10)
    resp = client.post("/sign-in", data={"token": token})
    assert resp.status_code == 303 and resp.headers["location"] == "/runs"
    return client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


def test_pages_send_a_csp_with_no_third_party_origin_and_hardening_headers(
    dashboard: str, stack: Stack
) -> None:
    resp = httpx.get(f"{dashboard}/sign-in", timeout=10)
    assert resp.status_code == 200
    csp = resp.headers["content-security-policy"]
    sources = {s for directive in csp.split(";") for s in directive.split()[1:]}
    allowed = {"'self'", "'none'", "data:", stack.gateway_url}
    assert sources <= allowed, sources - allowed
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"


def test_signing_in_keeps_the_token_in_an_httponly_strict_cookie_never_in_a_url(
    dashboard: str, stack: Stack
) -> None:
    # Not signed in: every page leads to sign-in.
    anonymous = httpx.get(f"{dashboard}/runs", timeout=10)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/sign-in"
    resp = httpx.post(f"{dashboard}/sign-in", data={"token": stack.token}, timeout=10)
    assert resp.status_code == 303 and stack.token not in resp.headers["location"]
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("roost_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/" in cookie


def test_a_wrong_token_is_refused_with_the_apis_reason_and_no_session(
    dashboard: str,
) -> None:
    resp = httpx.post(f"{dashboard}/sign-in", data={"token": "rst_not-a-token"}, timeout=10)
    assert resp.status_code == 401
    assert "Refused" in resp.text and "set-cookie" not in resp.headers
    # A session whose token the api no longer accepts ends, back at sign-in with why.
    stale = httpx.get(f"{dashboard}/runs", cookies={"roost_session": "rst_revoked"}, timeout=10)
    assert stale.status_code == 303 and stale.headers["location"].startswith("/sign-in?message=")


def test_sign_out_needs_the_csrf_token_and_then_ends_the_session(
    dashboard: str, stack: Stack
) -> None:
    client = _signed_in(dashboard, stack.token)
    page = client.get("/runs")
    forged = client.post("/sign-out", data={"csrf": "0" * 64})
    assert forged.status_code == 403 and "CSRF" in forged.text
    # A page's script renews its stream token only with the CSRF token in a header.
    assert client.post("/stream-token", headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    renewed = client.post("/stream-token", headers={"X-CSRF-Token": _csrf(page.text)})
    assert renewed.status_code == 200 and renewed.json()["token"]
    assert client.get("/runs").status_code == 200  # still signed in
    out = client.post("/sign-out", data={"csrf": _csrf(page.text)})
    assert out.status_code == 303 and out.headers["location"].startswith("/sign-in")
    assert (
        'roost_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    )


def test_the_runs_page_lists_runs_and_filters_them_by_workflow_status_and_metadata(
    dashboard: str, stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    tag = f"dash-{time.monotonic_ns()}"
    mine = flows.chain.run({"task_id": "d-1"}, wait_for_result=False, metadata={"tag": tag})
    mine.result(timeout=60)
    other = flows.chain.run({"task_id": "d-2"}, wait_for_result=False)
    client = _signed_in(dashboard, stack.token)

    listed = client.get("/runs", params={"workflow": "t-chain"}).text
    assert f'data-run="{mine.id}"' in listed and f'data-run="{other.id}"' in listed
    filtered = client.get("/runs", params={"meta": f"tag={tag}"}).text
    assert f'data-run="{mine.id}"' in filtered and f'data-run="{other.id}"' not in filtered
    assert f"tag={tag}" in filtered
    succeeded = client.get("/runs", params={"meta": f"tag={tag}", "status": "FAILED"}).text
    assert f'data-run="{mine.id}"' not in succeeded and "No runs match." in succeeded
    bad = client.get("/runs", params={"meta": "no-pair"})
    assert bad.status_code == 400 and "no-pair" in bad.text
    # Search by id opens the run.
    found = client.get("/runs", params={"run_id": mine.id})
    assert found.status_code == 303 and found.headers["location"] == f"/runs/{mine.id}"


def test_a_runs_page_shows_its_tasks_and_an_unknown_run_says_so(
    dashboard: str, stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.chain.run({"task_id": "d-3"}, wait_for_result=False)
    ref.result(timeout=60)
    client = _signed_in(dashboard, stack.token)
    page = client.get(f"/runs/{ref.id}").text
    assert ref.id in page
    for task in ("check_deps", "process", "verify", "commit"):
        assert f'data-task="{task}"' in page
    assert page.count("status-succeeded") >= 5  # the run and its four tasks
    missing = "00000000-0000-4000-8000-000000000000"
    gone = client.get(f"/runs/{missing}")
    assert gone.status_code == 404 and missing in gone.text and "Traceback" not in gone.text


@needs_chromium
def test_in_a_browser_sign_in_see_runs_open_one_and_a_wrong_token_is_refused(
    dashboard: str, stack: Stack, flows: ModuleType, basic_worker: Process, browser: Any
) -> None:
    ref = flows.chain.run({"task_id": "d-browser"}, wait_for_result=False)
    ref.result(timeout=60)
    context = browser.new_context()
    try:
        page: Any = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{dashboard}/runs")
        assert page.url.endswith("/sign-in")
        page.fill("#token", "rst_wrong")
        page.click("button[type=submit]")
        assert "Refused" in page.inner_text("[role=alert]")
        page.fill("#token", stack.token)
        page.click("button[type=submit]")
        page.wait_for_url(f"{dashboard}/runs")
        # The cookie is there, and no script can read it.
        assert page.evaluate("() => document.cookie") == ""
        page.click(f"tr[data-run='{ref.id}'] a")
        page.wait_for_url(f"{dashboard}/runs/{ref.id}")
        assert page.inner_text("#run-status") == "SUCCEEDED"
        assert page.locator("tr[data-task]").count() == 4
        # Every control is reachable by keyboard: Tab reaches the sign-out button.
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.textContent") == "Sign out":
                break
        assert page.evaluate("() => document.activeElement.textContent") == "Sign out"
    finally:
        context.close()


def test_cancel_and_replay_from_a_runs_page_need_the_csrf_token(
    dashboard: str, stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    client = _signed_in(dashboard, stack.token)
    # A run no worker serves stays queued: cancel it from its page.
    waiting = flows.unserved.run({}, wait_for_result=False)
    page = client.get(f"/runs/{waiting.id}").text
    assert 'id="cancel"' in page and 'id="replay"' not in page
    forged = client.post(f"/runs/{waiting.id}/cancel", data={"csrf": "f" * 64})
    assert forged.status_code == 403
    assert flows.roost.runs.get(waiting.id).status == "QUEUED"
    done = client.post(f"/runs/{waiting.id}/cancel", data={"csrf": _csrf(page)})
    assert done.status_code == 303 and done.headers["location"] == f"/runs/{waiting.id}"
    assert flows.roost.runs.get(waiting.id).status == "CANCELLED"
    assert 'id="replay"' in client.get(f"/runs/{waiting.id}").text

    # A failed run: replay it from its page; its failed task runs again (attempt 2).
    failed = flows.failing.run({}, wait_for_result=False)
    assert flows.roost.runs.wait(failed.id, timeout=60).status == "FAILED"
    before = {t.name: t.attempt for t in flows.roost.runs.get(failed.id).tasks}
    page = client.get(f"/runs/{failed.id}").text
    replayed = client.post(f"/runs/{failed.id}/replay", data={"csrf": _csrf(page)})
    assert replayed.status_code == 303
    final = flows.roost.runs.wait(failed.id, timeout=60)
    assert any(t.attempt > before[t.name] for t in final.tasks if before[t.name])


def test_workers_and_rate_limits_pages_and_editing_a_limit(
    dashboard: str, stack: Stack, basic_worker: Process
) -> None:
    client = _signed_in(dashboard, stack.token)
    workers = client.get("/workers").text
    assert "alive" in workers and "t-chain" in workers and "/ 8" in workers
    # The basic worker's row: alive in green, its version and the SDK's.
    row = re.search(r'<tr data-worker="basic@[^"]*" data-status="alive">.*?</tr>', workers, re.S)
    assert row, workers
    assert '<span class="status status-succeeded">alive</span>' in row.group(0)
    assert "flows-1" in row.group(0) and importlib.metadata.version("roost") in row.group(0)
    key = f"dash-limit-{time.monotonic_ns()}"
    put = httpx.put(
        f"{stack.api_url}/api/v1/rate-limits/{key}",
        json={"limit": 3},
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=10,
    )
    assert put.status_code == 200, put.text
    page = client.get("/rate-limits").text
    assert f'data-key="{key}"' in page and "concurrency" in page
    saved = client.post(f"/rate-limits/{key}", data={"csrf": _csrf(page), "limit": "7"})
    assert saved.status_code == 303
    got = httpx.get(
        f"{stack.api_url}/api/v1/rate-limits/{key}",
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=10,
    ).json()
    assert got["limit"] == 7
    bad = client.post(
        f"/rate-limits/{key}", data={"csrf": _csrf(page), "limit": "seven"}, follow_redirects=True
    )
    assert "seven" in bad.text and "not a whole number" in bad.text and key in bad.text
    forged = client.post(f"/rate-limits/{key}", data={"csrf": "0" * 64, "limit": "1"})
    assert forged.status_code == 403


AXE = os.path.join(
    os.path.dirname(__file__),
    "..",
    "..",
    "services",
    "dashboard",
    "node_modules",
    "axe-core",
    "axe.min.js",
)

# Records, per DAG node, when its class first showed each status (0: already at install).
DAG_RECORDER = """
() => {
  window.__noReload = true;
  window.__seen = {};
  const t0 = performance.now();
  const note = (g, at) => {
    const name = g.getAttribute('data-node');
    const status = [...g.classList].find((c) => c.startsWith('status-'));
    window.__seen[name] = window.__seen[name] || {};
    if (!(status in window.__seen[name])) window.__seen[name][status] = at;
  };
  document.querySelectorAll('#dag g.node').forEach((g) => note(g, 0));
  new MutationObserver((changes) => {
    for (const c of changes) note(c.target, performance.now() - t0);
  }).observe(document.getElementById('dag'), {attributes: true, subtree: true,
                                               attributeFilter: ['class']});
}
"""


@pytest.fixture(scope="module")
def paced_worker(stack: Stack) -> Iterator[Process]:
    proc = stack.start_worker("roost_testapps.flows:paced_worker", threads=4, name="paced")
    yield proc
    stack.stop_one(proc)


def _browser_sign_in(browser: Any, dashboard: str, token: str, **options: Any) -> Any:
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{dashboard}/sign-in")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{dashboard}/runs")
    return page


@needs_chromium
def test_in_a_browser_a_runs_dag_turns_green_task_by_task_without_a_reload(
    dashboard: str, stack: Stack, flows: ModuleType, paced_worker: Process, browser: Any
) -> None:
    page = _browser_sign_in(browser, dashboard, stack.token)
    # Triggered from the workflow's form, which opens the new run's page.
    page.goto(f"{dashboard}/workflows/t-paced")
    page.fill("#input", '{"pace": 1.5}')
    page.click("#trigger")
    page.wait_for_url(re.compile(rf"{re.escape(dashboard)}/runs/[0-9a-f-]{{36}}$"))
    page.evaluate(DAG_RECORDER)
    assert page.locator("#dag g.node").count() == 4
    page.wait_for_function(
        "() => document.querySelectorAll('#dag g.node.status-succeeded').length === 4",
        timeout=60_000,
    )
    page.wait_for_function(
        "() => document.getElementById('run-status').textContent === 'SUCCEEDED'"
    )
    seen = page.evaluate("() => window.__seen")
    done = [seen[name]["status-succeeded"] for name in ("first", "second", "third", "fourth")]
    assert done == sorted(done), seen  # in the DAG's order
    assert sum(1 for at in done if at > 0) >= 2, seen  # turned green live, on this page
    assert page.evaluate("() => window.__noReload") is True  # no reload happened
    assert page.inner_text("#live-state") == "Run succeeded: up to date"
    # A task's details and its log lines, streamed.
    page.click("#dag g.node[data-node='first']")
    assert '{"step": 1}' in page.inner_text("#task-detail") or '"step":1' in page.inner_text(
        "#task-detail"
    ).replace(" ", "")
    assert '"pace":1.5' in page.inner_text("[data-fact=input]").replace(" ", "")
    # Its attempts, followed live from the events (the page opened before it ran).
    attempt = page.locator("#task-detail-attempts tr[data-attempt='1'] td")
    assert attempt.nth(1).inner_text() == "SUCCEEDED"
    assert attempt.nth(2).inner_text().startswith("paced@")  # the worker that ran it
    assert attempt.nth(3).inner_text() == "—"  # not placed: its workflow's shared queue
    assert float(attempt.nth(6).inner_text().removesuffix(" s")) >= 1.4  # it slept 1.5 s
    page.wait_for_function(
        "() => [...document.querySelectorAll('#logs li')].some("
        "(li) => !li.hidden && li.textContent.includes('first is done'))"
    )
    # The tasks table follows too.
    assert page.locator("tr[data-task] .status-succeeded").count() == 4
    # The timeline: the run's spans from the span store, streamed in as they are stored
    # (the four attempts' spans among them).
    page.wait_for_function(
        "() => ['first', 'second', 'third', 'fourth'].every((t) =>"
        " document.querySelector(`#timeline rect[data-item='task t-paced.${t}']`))",
        timeout=30_000,
    )
    assert "span store" in page.inner_text("#timeline-source")


@needs_chromium
def test_in_a_browser_cancel_a_long_run_replay_a_failed_one_and_filter_by_metadata(
    dashboard: str,
    stack: Stack,
    flows: ModuleType,
    paced_worker: Process,
    basic_worker: Process,
    browser: Any,
) -> None:
    page = _browser_sign_in(browser, dashboard, stack.token)
    tag = f"browser-{time.monotonic_ns()}"
    # A long run (four tasks of 5 s): cancel it once its first task runs.
    long = flows.paced.run({"pace": 5}, wait_for_result=False, metadata={"tag": tag})
    page.goto(f"{dashboard}/runs/{long.id}")
    page.wait_for_selector("#dag g.node[data-node='first'].status-running")
    with page.expect_navigation():  # the form posts, then comes back to this page
        page.click("#cancel")
    assert page.inner_text("#run-status") == "CANCELLED"
    assert page.locator("#replay").is_visible()

    # A failed run: replay it; its failed task runs again, live on the page.
    failed = flows.failing.run({"task_id": "browser"}, wait_for_result=False)
    assert flows.roost.runs.wait(failed.id, timeout=60).status == "FAILED"
    failed_task = next(t for t in flows.roost.runs.get(failed.id).tasks if t.status == "FAILED")
    page.goto(f"{dashboard}/runs/{failed.id}")
    with page.expect_navigation():
        page.click("#replay")
    attempt = f"tr[data-task='{failed_task.name}'] [data-field=attempt]"
    page.wait_for_function(
        f"() => document.querySelector(\"{attempt}\").textContent === '2'", timeout=60_000
    )
    page.wait_for_function(
        "() => document.getElementById('run-status').textContent === 'FAILED'", timeout=60_000
    )

    # The runs list filtered by a metadata pair: the cancelled run alone.
    page.goto(f"{dashboard}/runs")
    page.fill("input[name=meta]", f"tag={tag}")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"/runs\?.*meta="))
    rows = page.locator("tr[data-run]")
    assert rows.count() == 1 and rows.first.get_attribute("data-run") == long.id
    assert page.inner_text(f"tr[data-run='{long.id}'] .status") == "CANCELLED"


def _a_new_run_appears_and_succeeds(page: Any, flows: ModuleType, pace: float) -> str:
    """Trigger a t-paced run and wait until the open runs page shows it, then shows it
    SUCCEEDED, without a reload (``window.__noReload`` set by the caller); its row's
    selector."""
    ref = flows.paced.run({"pace": pace}, wait_for_result=False)
    row = f"tr[data-run='{ref.id}']"
    page.wait_for_selector(row)
    page.wait_for_function(
        f"() => document.querySelector(\"{row} .status\").textContent === 'SUCCEEDED'",
        timeout=60_000,
    )
    assert page.evaluate("() => window.__noReload") is True
    return row


@needs_chromium
def test_in_a_browser_a_page_left_open_stays_live_across_a_gateway_restart(
    stack: Stack, flows: ModuleType, paced_worker: Process, browser: Any
) -> None:
    # A dashboard whose pages' stream tokens last 2 s: by the time the gateway restarts,
    # the page's token is long expired, and the gateway refuses the browser's own
    # reconnection; the page must get a fresh token and resume where it was.
    url, proc = stack.start_dashboard(
        extra_env={"ROOST_STREAM_TOKEN_SECONDS": "2"}, name="dashboard-short"
    )
    try:
        page = _browser_sign_in(browser, url, stack.token)
        page.goto(f"{url}/runs?workflow=t-paced")
        page.wait_for_function("() => document.getElementById('live-state').textContent === 'Live'")
        page.evaluate("() => { window.__noReload = true; }")
        time.sleep(3)  # the page's stream token expires; its open stream goes on
        stack.restart(stack.process("gateway"))
        page.wait_for_function(
            "() => document.getElementById('live-state').textContent === 'Live'", timeout=60_000
        )
        _a_new_run_appears_and_succeeds(page, flows, pace=0.1)
    finally:
        stack.stop_one(proc)


@needs_chromium
def test_in_a_browser_a_big_runs_timeline_draws_the_rows_in_view_and_scrolling_draws_more(
    dashboard: str, stack: Stack, flows: ModuleType, paced_worker: Process, browser: Any
) -> None:
    ref = flows.wide.run({}, wait_for_result=False)
    ref.result(timeout=60)
    page = _browser_sign_in(browser, dashboard, stack.token)
    page.goto(f"{dashboard}/runs/{ref.id}")
    assert page.locator("#dag g.node").count() == 62
    # Over a hundred spans (some stored just after the run's end: the page reads them
    # again), of which only those in and near the frame's view are drawn.
    rows_js = "(document.getElementById('timeline').viewBox.baseVal.height - 8) / 20"
    page.wait_for_function(f"() => {rows_js} >= 100", timeout=30_000)
    rows = int(page.evaluate(f"() => {rows_js}"))
    drawn = page.locator("#timeline rect").count()
    assert 20 <= drawn < rows, (drawn, rows)
    lowest = (
        "Math.max(...[...document.querySelectorAll('#timeline rect')]"
        ".map((r) => r.y.baseVal.value))"
    )
    assert page.evaluate(f"() => {lowest}") < (rows - 1) * 20
    page.evaluate(
        "() => { const f = document.querySelector('figure.timeline');"
        " f.scrollTop = f.scrollHeight; }"
    )
    page.wait_for_function(f"() => {lowest} >= {(rows - 1) * 20}")
    assert page.locator("#timeline rect").count() < rows


@needs_chromium
def test_in_a_browser_new_runs_appear_on_the_runs_page_without_a_reload(
    dashboard: str, stack: Stack, flows: ModuleType, paced_worker: Process, browser: Any
) -> None:
    page = _browser_sign_in(browser, dashboard, stack.token)
    page.goto(f"{dashboard}/runs?workflow=t-paced")
    page.wait_for_function("() => document.getElementById('live-state').textContent === 'Live'")
    page.evaluate("() => { window.__noReload = true; }")
    row = _a_new_run_appears_and_succeeds(page, flows, pace=0.2)
    # Its start and duration filled in live too (four tasks of 0.2 s: at least 0.8 s).
    # When the run started before its row reached the page, the page fetches the
    # finished row from the server after showing the status: wait for that too.
    page.wait_for_function(
        f"() => document.querySelector(\"{row} [data-field=duration]\").textContent.endsWith(' s')",
        timeout=10_000,
    )
    duration = page.inner_text(f"{row} [data-field=duration]")
    assert duration.endswith(" s") and float(duration.split()[0]) >= 0.8, duration
    assert page.inner_text(f"{row} td:nth-child(4)") == "api"  # the trigger


@needs_chromium
def test_axe_finds_no_serious_or_critical_violation_on_any_page(
    dashboard: str, stack: Stack, flows: ModuleType, paced_worker: Process, browser: Any
) -> None:
    assert os.path.isfile(AXE), "axe-core is missing: run `just setup` (npm ci)"
    ref = flows.paced.run({"pace": 0.05}, wait_for_result=False)
    ref.result(timeout=60)
    # axe is injected by the test, so this context bypasses the page's CSP for it.
    page = _browser_sign_in(browser, dashboard, stack.token, bypass_csp=True)
    failures: dict[str, list[str]] = {}
    pages = (
        "/runs",
        f"/runs/{ref.id}",
        "/workflows",
        "/workflows/t-paced",
        "/workers",
        "/activity",
    )
    for path in (*pages, "/rate-limits", "/sign-in"):
        if path == "/sign-in":
            page.context.clear_cookies()
        page.goto(f"{dashboard}{path}")
        page.add_script_tag(path=AXE)
        result = page.evaluate("async () => await axe.run(document)")
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        if bad:
            failures[path] = bad
    assert failures == {}


def test_workflow_stats_count_a_workflows_recent_runs(
    stack: Stack, flows: ModuleType, paced_worker: Process
) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    url = f"{stack.api_url}/api/v1/workflows/t-paced/stats"
    before = httpx.get(url, params={"hours": 1}, headers=headers, timeout=10).json()
    refs = [flows.paced.run({"pace": 0.01}, wait_for_result=False) for _ in range(3)]
    for ref in refs:
        ref.result(timeout=60)
    after = httpx.get(url, params={"hours": 1}, headers=headers, timeout=10).json()
    assert after["runs"] - before["runs"] == 3
    assert after["succeeded"] - before["succeeded"] == 3
    assert after["success_rate"] is not None and 0 < after["success_rate"] <= 1
    assert 0 < after["duration_p50"] <= after["duration_p95"]
    missing = httpx.get(
        f"{stack.api_url}/api/v1/workflows/no-such-flow/stats", headers=headers, timeout=10
    )
    assert missing.status_code == 404 and "no-such-flow" in missing.json()["error"]["message"]
    bad = httpx.get(url, params={"hours": "-1"}, headers=headers, timeout=10)
    assert bad.status_code == 400 and "hours" in bad.json()["error"]["message"]


def test_the_workflows_pages_show_dag_stats_and_trigger_a_run_with_inline_errors(
    dashboard: str, stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    flows.validated.run({"task_id": "wf-page"}, timeout=60)
    client = _signed_in(dashboard, stack.token)
    listing = client.get("/workflows").text
    assert 'data-workflow="t-validated"' in listing and 'data-workflow="t-chain"' in listing
    page = client.get("/workflows/t-validated", params={"hours": "24"}).text
    assert 'id="workflow-data"' in page and '"name": "echo"' in page
    assert re.search(r'data-stat="succeeded">[1-9]', page), "a succeeded run is counted"
    # Input the workflow's model refuses: the api's message inline, the text kept.
    refused = client.post(
        "/workflows/t-validated/runs",
        data={"csrf": _csrf(page), "input": '{"priority": 2}', "metadata": ""},
    )
    assert refused.status_code == 422 and "task_id" in refused.text
    assert 'id="trigger-error"' in refused.text and "priority" in refused.text
    not_json = client.post(
        "/workflows/t-validated/runs",
        data={"csrf": _csrf(page), "input": "{nope", "metadata": ""},
    )
    assert not_json.status_code == 400 and "not JSON" in not_json.text
    # Good input: the run is created, with its metadata, and its page opens.
    made = client.post(
        "/workflows/t-validated/runs",
        data={"csrf": _csrf(page), "input": '{"task_id": "from-form"}', "metadata": "via=form"},
    )
    assert made.status_code == 303 and made.headers["location"].startswith("/runs/")
    run_id = made.headers["location"].removeprefix("/runs/")
    run = flows.roost.runs.get(run_id)
    assert run.input == {"task_id": "from-form", "priority": 1} or run.input == {
        "task_id": "from-form"
    }
    assert run.metadata == {"via": "form"}
    forged = client.post(
        "/workflows/t-validated/runs", data={"csrf": "0" * 64, "input": "{}", "metadata": ""}
    )
    assert forged.status_code == 403
    unknown = client.get("/workflows/no-such-flow")
    assert unknown.status_code == 404 and "no-such-flow" in unknown.text


@needs_chromium
def test_screenshots_of_the_runs_a_run_a_workflow_the_activity_and_the_workers_pages(
    dashboard: str,
    stack: Stack,
    flows: ModuleType,
    paced_worker: Process,
    browser: Any,
    tmp_path: Any,
) -> None:
    """The pictures in docs/dashboard.md: ROOST_SCREENSHOTS=docs/img writes them there
    (by default to a temporary folder); each must be a real, non-trivial PNG."""
    folder = os.environ.get("ROOST_SCREENSHOTS") or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    refs = [
        flows.paced.run({"pace": 0.3}, wait_for_result=False, metadata={"ticket": f"bd-{i}"})
        for i in range(3)
    ]
    for ref in refs:
        ref.result(timeout=60)
    page = _browser_sign_in(browser, dashboard, stack.token)
    page.set_viewport_size({"width": 1280, "height": 860})
    shots = {
        "runs.png": f"{dashboard}/runs?workflow=t-paced",
        "run.png": f"{dashboard}/runs/{refs[-1].id}",
        "workflow.png": f"{dashboard}/workflows/t-paced",
        "activity.png": f"{dashboard}/activity?minutes=15",
        "workers.png": f"{dashboard}/workers",
    }
    for name, url in shots.items():
        page.goto(url)
        if name == "run.png":
            page.wait_for_selector("#timeline rect")
            page.click("#dag g.node[data-node='fourth']")
        if name == "activity.png":
            page.wait_for_selector("#chart-queue canvas")
        path = os.path.join(folder, name)
        page.screenshot(path=path, full_page=True)
        with open(path, "rb") as f:
            data = f.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, name


def test_activity_has_a_point_per_minute_with_runs_by_state_and_task_durations(
    stack: Stack, flows: ModuleType, paced_worker: Process
) -> None:
    refs = [flows.paced.run({"pace": 0.01}, wait_for_result=False) for _ in range(3)]
    for ref in refs:
        ref.result(timeout=60)
    body = httpx.get(
        f"{stack.api_url}/api/v1/activity",
        params={"minutes": 5},
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=10,
    ).json()
    points = body["points"]
    assert len(points) == 5 and [p["minute"] % 60 for p in points] == [0] * 5
    assert [b["minute"] - a["minute"] for a, b in zip(points, points[1:], strict=False)] == [60] * 4
    assert sum(p["succeeded"] for p in points) >= 3
    assert any(p["task_p50"] is not None and 0 < p["task_p50"] <= p["task_p95"] for p in points)
    assert body["ready"]["t-paced"] == 0  # its worker keeps up


@needs_chromium
def test_in_a_browser_the_activity_page_draws_its_three_charts(
    dashboard: str, stack: Stack, flows: ModuleType, paced_worker: Process, browser: Any
) -> None:
    flows.paced.run({"pace": 0.01}, wait_for_result=False).result(timeout=60)
    page = _browser_sign_in(browser, dashboard, stack.token)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{dashboard}/activity?minutes=15")
    for chart in ("#chart-runs", "#chart-durations", "#chart-queue"):
        page.wait_for_selector(f"{chart} canvas")
    assert page.locator("#ready-now tr[data-queue='t-paced']").count() == 1
    assert errors == []  # nothing refused by the CSP, no script error
