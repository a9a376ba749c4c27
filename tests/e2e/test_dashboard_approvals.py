"""The dashboard's approvals (issue #18, ``ctx.wait_for_approval``), with real services
in headless Chromium: a run's page shows the gate live as its task asks, and Reject
there (with a reason) resumes the task with the decision, which another open page of
the run shows live; the Approvals page lists the question, and Approve there resumes
the task with the reason and the dashboard's token name; a stale form's late decision
shows the api's 409 message; a forged POST (no CSRF token) is refused and decides
nothing.

The run page's test comes first: the module's worker starts in it, after the page is
open, so that the gate appears live."""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from chromium import needs_chromium

from harness import Process, Stack
from roost import RoostWarning

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def dashboard(stack: Stack) -> Iterator[str]:
    url, proc = stack.start_dashboard(name="dashboard-approvals")
    yield url
    stack.stop_one(proc)


@pytest.fixture(scope="module")
def sleeper(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    """A worker process with one slot serving the durable workflows."""
    proc = stack.start_worker("roost_testapps.flows:sleeper", processes=1, threads=1)
    yield proc
    stack.stop_one(proc)


def _signed_in(browser: Any, dashboard: str, token: str) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{dashboard}/sign-in")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{dashboard}/runs")
    return page


def _live(page: Any) -> None:
    page.wait_for_function("() => document.getElementById('live-state').textContent === 'Live'")
    page.evaluate("() => { window.__noReload = true; }")


def _pending_of(stack: Stack, run_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = stack.api_get("/api/v1/approvals", status="PENDING", run_id=run_id)
        if page["approvals"]:
            [approval] = page["approvals"]
            return dict(approval)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never asked for an approval")


def _shot(page: Any, name: str) -> None:
    """ROOST_SCREENSHOTS=folder keeps a picture of the page there."""
    folder = os.environ.get("ROOST_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=os.path.join(folder, name), full_page=True)


def test_in_a_browser_a_runs_page_shows_the_gate_live_and_a_rejection_there_resumes_the_task(
    dashboard: str,
    stack: Stack,
    flows: ModuleType,
    browser: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    flows.durable_approval.register()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RoostWarning)  # no live worker serves it, yet
        ref = flows.durable_approval.run(
            {"marker": str(tmp_path / "m"), "pr": 31, "timeout": 60}, wait_for_result=False
        )
    page = _signed_in(browser, dashboard, stack.token)
    run_url = f"{dashboard}/runs/{ref.id}"
    page.goto(run_url)
    _live(page)
    assert page.is_hidden("#approvals")  # nothing asked yet

    request.getfixturevalue("sleeper")  # the worker starts: its task asks, live
    gate = "#gates li.gate[data-status=PENDING]"
    page.wait_for_selector(gate)
    approval = _pending_of(stack, ref.id)
    assert page.get_attribute(gate, "data-approval") == approval["id"]
    assert page.inner_text(f"{gate} strong[data-field=question]") == "Merge PR 31?"
    assert page.inner_text(f"{gate} [data-field=details]") == '{"pr":31}'
    assert page.inner_text(f"{gate} [data-field=task]") == "await_merge"
    assert page.inner_text("tr[data-task='await_merge'] .status") == "WAITING"
    assert page.evaluate("() => window.__noReload") is True  # the gate came live
    # Another page of the run, rendered with the gate, follows the decision made here.
    other = page.context.new_page()
    other.goto(run_url)
    _live(other)
    assert other.get_attribute(gate, "data-approval") == approval["id"]
    _shot(page, "run-gate.png")

    page.fill(f"{gate} textarea[name=reason]", "not this week")
    page.click(f"{gate} button[data-action=reject]")  # the script's own copy of the form
    page.wait_for_url(re.compile(r"/runs/[^?]+\?notice="))
    assert "Rejected \u201cMerge PR 31?\u201d" in page.inner_text("p.notice[role=status]")
    out = ref.result(timeout=30)["await_merge"]
    assert out["approved"] is False and out["reason"] == "not this week"
    assert out["by"] == "tests" and out["approval_id"] == approval["id"]

    decided = f"#gates li.gate[data-approval='{approval['id']}'][data-status=REJECTED]"
    other.wait_for_selector(decided)
    assert other.locator(f"{decided} form").count() == 0  # the gate is closed
    outcome = other.inner_text(f"{decided} [data-field=outcome]")
    assert outcome.startswith("Rejected by tests at ") and outcome.endswith(": not this week")
    line = "await_merge rejected by tests: not this week"
    assert other.inner_text("#logs li.decision") == line
    other.wait_for_function(
        """() => document.querySelector("tr[data-task='await_merge'] .status")
                   .textContent === 'SUCCEEDED'"""
    )
    assert other.evaluate("() => window.__noReload") is True  # all of it without a reload
    # Rendered afresh, the page says the same.
    page.reload()
    assert page.inner_text(f"{decided} [data-field=outcome]") == outcome
    assert page.inner_text("#logs li.decision") == line
    _shot(page, "run-decided.png")
    page.context.close()


def test_in_a_browser_approve_from_the_approvals_page_and_a_forged_or_late_decision_is_refused(
    dashboard: str,
    stack: Stack,
    flows: ModuleType,
    sleeper: Process,
    browser: Any,
    tmp_path: Path,
) -> None:
    ref = flows.durable_approval.run(
        {"marker": str(tmp_path / "m"), "pr": 32, "timeout": 60}, wait_for_result=False
    )
    approval = _pending_of(stack, ref.id)
    # A forged POST (no CSRF token, or a wrong one) is refused and decides nothing.
    with httpx.Client(base_url=dashboard, timeout=10) as client:
        assert client.post("/sign-in", data={"token": stack.token}).status_code == 303
        for verb in ("approve", "reject"):
            for forged in ({}, {"csrf": "0" * 64}):
                resp = client.post(
                    f"/approvals/{approval['id']}/{verb}", data={**forged, "reason": "forged"}
                )
                assert resp.status_code == 403 and "CSRF" in resp.text, (verb, forged)
    assert stack.api_get(f"/api/v1/approvals/{approval['id']}")["status"] == "PENDING"

    page = _signed_in(browser, dashboard, stack.token)
    page.click("nav a[href='/approvals']")
    row = f"table.pending tr[data-approval='{approval['id']}']"
    assert page.inner_text(f"{row} [data-field=question]") == "Merge PR 32?"
    assert page.inner_text(f"{row} [data-field=details]") == '{"pr":32}'
    assert page.get_attribute(f"{row} a[data-field=run]", "href") == f"/runs/{ref.id}"
    assert page.inner_text(f"{row} a[data-field=run]") == "t-durable-approval › await_merge"
    _shot(page, "approvals.png")
    stale = page.context.new_page()  # a second tab, whose form goes stale
    stale.goto(f"{dashboard}/approvals")

    page.fill(f"{row} textarea[name=reason]", "CI green")
    page.click(f"{row} button[data-action=approve]")
    page.wait_for_url(re.compile(r"/approvals\?notice="))
    assert "Approved \u201cMerge PR 32?\u201d" in page.inner_text("p.notice[role=status]")
    out = ref.result(timeout=30)["await_merge"]
    assert out["approved"] is True and out["reason"] == "CI green"
    assert out["by"] == "tests"  # the name of the token the dashboard signed in with
    assert page.locator(row).count() == 0  # no longer pending: listed as decided
    done = f"table.decided tr[data-approval='{approval['id']}']"
    assert page.inner_text(f"{done} .status") == "APPROVED"
    assert page.inner_text(f"{done} [data-field=by]") == "tests"
    assert page.inner_text(f"{done} [data-field=reason]") == "CI green"

    # The stale tab's Reject: the api's 409, shown on the page it came from.
    stale.click(f"{row} button[data-action=reject]")
    stale.wait_for_url(re.compile(r"/approvals\?message="))
    alert = stale.inner_text("p.message[role=alert]")
    assert "approved already, by 'tests'" in alert, alert
    shown = stack.api_get(f"/api/v1/approvals/{approval['id']}")
    assert shown["status"] == "APPROVED" and shown["reason"] == "CI green"
    page.context.close()
