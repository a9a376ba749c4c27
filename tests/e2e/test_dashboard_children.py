"""Child runs (issue #18) where people look: a parent run's dashboard page, open before
its task runs, lists its children as the task triggers them, each a link, its status
going from RUNNING to SUCCEEDED without a reload; a child's page links back to its
parent. The CLI's `roost runs show` lists a run's children and names a child's parent,
and `roost runs list --parent` lists exactly the children."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from chromium import needs_chromium

from harness import Process, Stack
from roost import RoostWarning

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def dashboard(stack: Stack) -> Iterator[str]:
    url, proc = stack.start_dashboard(name="dashboard-children")
    yield url
    stack.stop_one(proc)


@pytest.fixture(scope="module")
def family(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    """Eight slots serving the parent and the child workflows (a waiting parent holds
    one, its children use the rest)."""
    proc = stack.start_worker("roost_testapps.flows:family", processes=1, threads=8)
    yield proc
    stack.stop_one(proc)


@needs_chromium
def test_in_a_browser_a_parents_page_lists_its_children_live_and_they_link_both_ways(
    dashboard: str,
    stack: Stack,
    flows: ModuleType,
    browser: Any,
    request: pytest.FixtureRequest,
) -> None:
    # No worker serves it yet: the page is open before its task triggers the children.
    flows.child_flow.register()
    flows.parent_flow.register()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RoostWarning)
        ref = flows.parent_flow.run({"n": 3, "sleep": 3, "wait": True}, wait_for_result=False)
    page = browser.new_context().new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{dashboard}/sign-in")
    page.fill("#token", stack.token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{dashboard}/runs")
    page.goto(f"{dashboard}/runs/{ref.id}")
    page.wait_for_function("() => document.getElementById('live-state').textContent === 'Live'")
    assert page.is_hidden("#children")  # none yet
    # What each child's badge has said, sampled every 20 ms; and no reload.
    page.evaluate(
        """() => {
          window.__noReload = true;
          window.__seen = {};
          setInterval(() => {
            for (const tr of document.querySelectorAll('#child-rows tr[data-child]')) {
              const said = (window.__seen[tr.dataset.child] ||= []);
              const now = tr.querySelector('.status').className;
              if (said[said.length - 1] !== now) said.push(now);
            }
          }, 20);
        }"""
    )

    request.getfixturevalue("family")  # the worker starts: the task triggers three runs
    rows = "#child-rows tr[data-child]"
    page.wait_for_function(
        f"""() => {{
          const rows = [...document.querySelectorAll("{rows}")];
          return rows.length === 3 && rows.every(
            (tr) => tr.querySelector('.status').textContent === 'SUCCEEDED');
        }}""",
        timeout=40_000,
    )
    assert ref.result(timeout=20)["fan_out"]["ids"]
    children = stack.api_get(f"/api/v1/runs/{ref.id}")["children"]
    ids = [c["id"] for c in children]
    assert page.eval_on_selector_all(rows, "rows => rows.map((r) => r.dataset.child)") == ids
    seen = page.evaluate("() => window.__seen")
    for child in ids:  # each went from RUNNING to SUCCEEDED on the open page
        said = [s for s in seen[child] if s != "status status-queued"]
        assert said == ["status status-running", "status status-succeeded"], (child, seen)
    first = f"#child-rows tr[data-child='{ids[0]}']"
    assert page.inner_text(f"{first} [data-field=workflow]") == "t-child"
    assert page.inner_text(f"{first} [data-field=task]") == "fan_out"
    assert page.inner_text(f"{first} [data-field=key]") == children[0]["key"]
    assert page.inner_text("#children-count") == "3 child runs"
    assert page.evaluate("() => window.__noReload") is True

    page.click(f"{first} a[data-field=link]")  # to the child's page, and back
    page.wait_for_url(f"{dashboard}/runs/{ids[0]}")
    parent = page.locator("#run-parent a")
    assert parent.get_attribute("href") == f"/runs/{ref.id}"
    assert "t-parent › fan_out" in page.inner_text("#run-parent")
    assert page.is_hidden("#children")  # it has none of its own
    parent.click()
    page.wait_for_url(f"{dashboard}/runs/{ref.id}")
    assert page.locator(rows).count() == 3
    page.context.close()


def test_the_cli_lists_a_runs_children_and_names_a_childs_parent(
    stack: Stack, flows: ModuleType, family: Process, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(stack.env, "COLUMNS", "200")  # whole cells: Rich folds at 80
    ref = flows.parent_flow.run({"n": 3, "wait": True}, wait_for_result=False)
    ids = ref.result(timeout=30)["fan_out"]["ids"]

    shown = stack.roost("runs", "show", ref.id)
    assert "children: 3 (3 SUCCEEDED)" in shown
    rows = [line for line in shown.splitlines() if "t-child" in line]
    # In the api's order (oldest first).
    listed = [c["id"] for c in stack.api_get(f"/api/v1/runs/{ref.id}")["children"]]
    assert [UUID.findall(row) for row in rows] == [[i] for i in listed]
    assert all("SUCCEEDED" in r and "fan_out" in r for r in rows)
    assert "parent:" not in shown

    listed = stack.roost("runs", "list", "--parent", ref.id)
    assert sorted(UUID.findall(listed)) == sorted(ids)
    child = stack.roost("runs", "show", ids[1])
    assert f"parent: {ref.id} (t-parent › fan_out, key 1)" in child
