"""The dashboard's Schedules page (issue #19), on the session's stack (its scheduler
fires): crons and scheduled runs listed, paused, resumed, deleted and cancelled from the
page in a real browser, each change checked at the api; a declared cron (on_crons)
offered no Delete and shown on its workflow's page; a run a cron or a scheduled run
started saying so; and every schedule action refused without the CSRF token.

The workflows here are served by no worker: a fired run stays QUEUED, which is all
these tests need (that it exists, and what started it)."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from chromium import needs_chromium

from harness import Stack

AXE = os.path.join(
    os.path.dirname(__file__), "..", "..", "services", "dashboard", "node_modules", "axe-core"
)
WHEN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ")  # formatting.when


@pytest.fixture(scope="module")
def dashboard(stack: Stack) -> Iterator[str]:
    url, proc = stack.start_dashboard(name="dashboard-schedules")
    yield url
    stack.stop_one(proc)


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url, timeout=10, headers={"Authorization": f"Bearer {stack.token}"}
    ) as client:
        yield client


def _register(api: httpx.Client, **extra: Any) -> str:
    name = f"dash-sched-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "tasks": [{"name": "a", "parents": []}], **extra}
    r = api.post("/api/v1/workflows", json=body)
    assert r.status_code == 201, r.text
    return name


def _made(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _until(check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return found


def _browser_sign_in(browser: Any, dashboard: str, token: str, **options: Any) -> Any:
    page = browser.new_context(**options).new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{dashboard}/sign-in")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{dashboard}/runs")
    return page


def _signed_in(dashboard: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=dashboard, timeout=10)
    resp = client.post("/sign-in", data={"token": token})
    assert resp.status_code == 303, resp.text
    return client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


@needs_chromium
def test_in_a_browser_pause_resume_and_delete_a_cron_cancel_a_scheduled_run_and_follow_runs(
    dashboard: str, stack: Stack, api: httpx.Client, browser: Any
) -> None:
    wf = _register(api)
    cron = _made(
        api.post(
            "/api/v1/crons",
            json={"workflow": wf, "name": "every-second", "expression": "* * * * * *"},
        )
    )
    try:
        later = _made(api.post("/api/v1/scheduled", json={"workflow": wf, "delay_seconds": 3600}))
        soon = _made(api.post("/api/v1/scheduled", json={"workflow": wf, "delay_seconds": 0.5}))
        # Fired by the stack's scheduler: the cron once at least, the near scheduled run.
        _until(lambda: api.get(f"/api/v1/crons/{cron['id']}").json()["recent_runs"])
        _until(lambda: api.get(f"/api/v1/scheduled/{soon['id']}").json()["status"] == "FIRED")

        page = _browser_sign_in(browser, dashboard, stack.token)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.click("nav a[href='/schedules']")
        page.wait_for_url(f"{dashboard}/schedules")
        page.goto(f"{dashboard}/schedules?workflow={wf}")
        row = f"tr[data-cron='{cron['id']}']"
        cells = page.locator(f"{row} td")
        assert [cells.nth(i).inner_text() for i in (0, 1, 2, 3)] == [
            "every-second",
            wf,
            "* * * * * *",
            "UTC",
        ]
        assert WHEN.fullmatch(page.inner_text(f"{row} [data-field=next]"))
        assert WHEN.fullmatch(page.inner_text(f"{row} [data-field=last]"))
        assert page.inner_text(f"{row} [data-field=source]") == "api"
        assert page.inner_text(f"{row} [data-field=state]") == "active"
        # The scheduled run still to come, with its Cancel; the fired one is not listed
        # until asked for.
        pending = f"tr[data-scheduled='{later['id']}']"
        assert page.inner_text(f"{pending} .status") == "SCHEDULED"
        assert page.locator(f"{pending} [data-action=cancel]").count() == 1
        assert page.locator(f"tr[data-scheduled='{soon['id']}']").count() == 0

        # Pause, then resume: the page and the api agree each time.
        with page.expect_navigation():
            page.click(f"{row} [data-action=pause]")
        assert page.url == f"{dashboard}/schedules?workflow={wf}"  # back to the same list
        assert page.get_attribute(row, "data-paused") == "true"
        assert page.inner_text(f"{row} [data-field=state]") == "paused"
        assert page.inner_text(f"{row} [data-field=next]") == "—"
        assert api.get(f"/api/v1/crons/{cron['id']}").json()["paused"] is True
        with page.expect_navigation():
            page.click(f"{row} [data-action=resume]")
        assert page.inner_text(f"{row} [data-field=state]") == "active"
        assert api.get(f"/api/v1/crons/{cron['id']}").json()["paused"] is False

        # The cron's page lists its runs; a run it started says so, naming it.
        page.click(f"{row} td:first-child a")
        page.wait_for_url(f"{dashboard}/schedules/crons/{cron['id']}")
        assert page.inner_text("#cron-state") == "active"
        page.click("table.cron-runs tr[data-run] a >> nth=0")
        page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
        assert page.inner_text("#run-trigger").startswith("cron every-second, fire time 20")

        # Delete asks first: dismissed, nothing happens; accepted, the cron is gone.
        page.goto(f"{dashboard}/schedules?workflow={wf}")
        page.once("dialog", lambda d: d.dismiss())
        page.click(f"{row} [data-action=delete]")
        assert page.locator(row).count() == 1
        assert api.get(f"/api/v1/crons/{cron['id']}").status_code == 200
        page.once("dialog", lambda d: d.accept())
        with page.expect_navigation():
            page.click(f"{row} [data-action=delete]")
        assert page.url == f"{dashboard}/schedules?workflow={wf}"
        assert page.locator(row).count() == 0
        assert api.get(f"/api/v1/crons/{cron['id']}").status_code == 404

        # Cancel the scheduled run: gone from those to come, CANCELLED at the api and in
        # the cancelled list (without a Cancel button).
        with page.expect_navigation():
            page.click(f"{pending} [data-action=cancel]")
        assert page.locator(pending).count() == 0
        assert api.get(f"/api/v1/scheduled/{later['id']}").json()["status"] == "CANCELLED"
        page.select_option("select[name=status]", "CANCELLED")
        with page.expect_navigation():
            page.click("form.filters button[type=submit]")
        assert page.inner_text(f"{pending} .status") == "CANCELLED"
        assert page.locator(f"{pending} [data-action=cancel]").count() == 0

        # The fired one links its run, whose page names the scheduled run.
        page.goto(f"{dashboard}/schedules?workflow={wf}&status=FIRED")
        fired = f"tr[data-scheduled='{soon['id']}']"
        assert page.inner_text(f"{fired} .status") == "FIRED"
        page.click(f"{fired} [data-field=run] a")
        page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
        assert page.inner_text("#run-trigger") == f"scheduled run {soon['id']}"
        assert errors == []  # nothing refused by the CSP, no script error
    finally:
        api.delete(f"/api/v1/crons/{cron['id']}")  # it fires every second: stop it


@needs_chromium
def test_in_a_browser_a_declared_cron_has_no_delete_and_shows_on_its_workflows_page(
    dashboard: str, stack: Stack, api: httpx.Client, browser: Any
) -> None:
    wf = _register(api, on_crons=["0 3 * * *"])
    (cron,) = api.get("/api/v1/crons", params={"workflow": wf}).json()["crons"]
    assert cron["declared"] is True
    # axe is injected by the test, so this context bypasses the page's CSP for it.
    page = _browser_sign_in(browser, dashboard, stack.token, bypass_csp=True)
    page.goto(f"{dashboard}/workflows/{wf}")
    crons = page.inner_text("#workflow-crons")
    assert "0 3 * * *" in crons and "declared" in crons and "active" in crons
    assert re.search(r"next \d{4}-\d\d-\d\d 03:00:00Z", crons), crons
    page.click("text=Its schedules")
    page.wait_for_url(f"{dashboard}/schedules?workflow={wf}")
    row = f"tr[data-cron='{cron['id']}']"
    assert page.inner_text(f"{row} [data-field=source]") == "declared"
    assert page.locator(f"{row} [data-action=delete]").count() == 0
    # It can be paused, which its workflow's page shows.
    with page.expect_navigation():
        page.click(f"{row} [data-action=pause]")
    assert api.get(f"/api/v1/crons/{cron['id']}").json()["paused"] is True
    page.goto(f"{dashboard}/workflows/{wf}")
    assert "paused" in page.inner_text("#workflow-crons")
    assert "next" not in page.inner_text("#workflow-crons")

    failures: dict[str, list[str]] = {}
    for path in (f"/schedules?workflow={wf}", f"/schedules/crons/{cron['id']}"):
        page.goto(f"{dashboard}{path}")
        page.add_script_tag(path=os.path.join(AXE, "axe.min.js"))
        result = page.evaluate("async () => await axe.run(document)")
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        if bad:
            failures[path] = bad
    assert failures == {}
    page.context.close()


def test_schedule_actions_need_the_csrf_token_and_what_the_api_refuses_is_shown(
    dashboard: str, stack: Stack, api: httpx.Client
) -> None:
    wf = _register(api, on_crons=["0 4 * * *"])
    other = _register(api)
    (declared,) = api.get("/api/v1/crons", params={"workflow": wf}).json()["crons"]
    made = _made(
        api.post(
            "/api/v1/crons", json={"workflow": wf, "name": "nightly", "expression": "0 5 * * *"}
        )
    )
    elsewhere = _made(
        api.post("/api/v1/crons", json={"workflow": other, "name": "x", "expression": "0 6 * * *"})
    )
    pending = _made(api.post("/api/v1/scheduled", json={"workflow": wf, "delay_seconds": 3600}))
    client = _signed_in(dashboard, stack.token)
    page = client.get("/schedules", params={"workflow": wf}).text
    # Filtered by workflow: this one's crons, not the other's.
    assert f'data-cron="{made["id"]}"' in page and f'data-cron="{declared["id"]}"' in page
    assert f'data-cron="{elsewhere["id"]}"' not in page

    actions = [
        *(f"/schedules/crons/{made['id']}/{verb}" for verb in ("pause", "resume", "delete")),
        f"/schedules/scheduled/{pending['id']}/cancel",
    ]
    for path in actions:
        for forged in ({"csrf": "0" * 64}, {}):
            resp = client.post(path, data=forged)
            assert resp.status_code == 403 and "CSRF" in resp.text, path
    assert api.get(f"/api/v1/crons/{made['id']}").json()["paused"] is False
    assert api.get(f"/api/v1/scheduled/{pending['id']}").json()["status"] == "SCHEDULED"

    # Deleting a declared cron, which the page does not offer: the api's 409, as a message.
    refused = client.post(
        f"/schedules/crons/{declared['id']}/delete",
        data={"csrf": _csrf(page), "workflow": wf, "status": "SCHEDULED"},
        follow_redirects=True,
    )
    assert refused.status_code == 200 and 'role="alert"' in refused.text
    assert "declared by its workflow" in refused.text and f"workflow={wf}" in str(refused.url)
    assert api.get(f"/api/v1/crons/{declared['id']}").status_code == 200
    # Cancelling twice: the second is refused with the api's reason.
    path = f"/schedules/scheduled/{pending['id']}/cancel"
    assert client.post(path, data={"csrf": _csrf(page)}).status_code == 303
    again = client.post(path, data={"csrf": _csrf(page)}, follow_redirects=True)
    assert "it was cancelled" in again.text
