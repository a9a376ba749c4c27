"""The dashboard shows a durable task asleep (issue #18): a run's page, open before the
task runs, shows it WAITING with what it waits for and until when as soon as it
suspends, then SUCCEEDED when it resumes and ends, live, without a reload; the page
rendered while it waits says the same."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from chromium import needs_chromium

from harness import Stack
from roost import RoostWarning

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def dashboard(stack: Stack) -> Iterator[str]:
    url, proc = stack.start_dashboard(name="dashboard-durable")
    yield url
    stack.stop_one(proc)


def _signed_in(browser: Any, dashboard: str, token: str) -> Any:
    page = browser.new_context().new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{dashboard}/sign-in")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{dashboard}/runs")
    return page


def test_in_a_browser_a_sleeping_task_shows_waiting_until_when_then_succeeds_live(
    dashboard: str, stack: Stack, flows: ModuleType, browser: Any, tmp_path: Path
) -> None:
    # No worker serves the run yet, so the page is open before its task runs and sees
    # it suspend live.
    flows.durable_sleep.register()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RoostWarning)  # no live worker serves it, yet
        ref = flows.durable_sleep.run(
            {"marker": str(tmp_path / "marks"), "seconds": 3}, wait_for_result=False
        )
    page = _signed_in(browser, dashboard, stack.token)
    page.goto(f"{dashboard}/runs/{ref.id}")
    page.wait_for_function("() => document.getElementById('live-state').textContent === 'Live'")
    page.evaluate("() => { window.__noReload = true; }")

    worker = stack.start_worker("roost_testapps.flows:sleeper", processes=1, threads=1)
    try:
        row = "tr[data-task='durable_nap']"
        page.wait_for_function(
            f"""() => document.querySelector("{row} .status").textContent === 'WAITING'""",
            timeout=30_000,
        )
        [task] = stack.api_get(f"/api/v1/runs/{ref.id}")["tasks"]
        until = datetime.fromtimestamp(task["waiting"]["until"], UTC)
        expected = f"sleep until {until:%Y-%m-%d %H:%M:%S}Z"
        # The live page says what the task waits for, as the server renders it.
        assert page.inner_text(f"{row} [data-field=waiting]") == expected
        assert page.locator("#dag g.node[data-node='durable_nap'].status-waiting").count() == 1
        label = page.get_attribute("#dag g.node[data-node='durable_nap']", "aria-label")
        assert label == f"task durable_nap: WAITING, {expected}"
        page.click("#dag g.node[data-node='durable_nap']")  # its details say it too
        assert page.inner_text("#task-detail [data-fact=waiting]") == expected
        # Rendered afresh while it sleeps (3 s), the page says the same.
        assert task["status"] == "WAITING"
        html = _page_html(dashboard, stack.token, ref.id)
        assert re.search(r'class="status status-waiting">WAITING</span>', html)
        assert f">{expected}</span>" in html

        page.wait_for_function(
            f"""() => document.querySelector("{row} .status").textContent === 'SUCCEEDED'""",
            timeout=30_000,
        )
        assert page.is_hidden(f"{row} [data-field=waiting]")
        assert page.locator("#dag g.node[data-node='durable_nap'].status-succeeded").count() == 1
        assert page.evaluate("() => window.__noReload") is True  # no reload happened
    finally:
        page.context.close()
        stack.stop_one(worker)


def _page_html(dashboard: str, token: str, run_id: str) -> str:
    with httpx.Client(base_url=dashboard, timeout=10) as client:
        signed = client.post("/sign-in", data={"token": token})
        assert signed.status_code == 303
        page = client.get(f"/runs/{run_id}")
        assert page.status_code == 200
        return page.text
