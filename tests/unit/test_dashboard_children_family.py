"""Child runs (issue #18) on the dashboard, against a fake api: a child's page links its
parent (run, workflow › task, key) and says the parent's task started it; a parent's page
lists its children (links, workflow, status, spawning task, key; the first 100, with a
link to them all), and ``/runs/{id}/children`` gives its script the same, with how many
are still active; the runs page filters by parent; a join reads ``children (3 runs)``."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest

from roost_dashboard.app import create_app
from roost_dashboard.children import SHOWN, family
from roost_dashboard.formatting import wait
from roost_dashboard.security import SESSION_COOKIE
from roost_dashboard.settings import DashboardSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2
    from starlette.testclient import TestClient

PARENT = "0f0e0d0c-0b0a-4998-8776-655443322110"
CHILD = "1a2b3c4d-0000-4000-8000-000000000000"


def _child(i: int, status: str = "SUCCEEDED") -> dict[str, Any]:
    return {
        "id": f"{CHILD[:-3]}{i:03x}",
        "workflow": "t-child",
        "status": status,
        "task": "fan_out",
        "key": str(i),
        "created_at": "2026-12-07T06:00:01+00:00",
    }


def _run(run_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": run_id,
        "workflow": "t-parent",
        "workflow_version": "v1",
        "status": "RUNNING",
        "created_at": "2026-12-07T06:00:00+00:00",
        "started_at": None,
        "finished_at": None,
        "metadata": {},
        "tasks": [],
        "parent": None,
        "children": [],
        "last_event_id": None,
        **changes,
    }


class FakeApi:
    def __init__(self, runs: dict[str, dict[str, Any]], listed: list[dict[str, Any]]) -> None:
        self.runs, self.listed = runs, listed
        self.sent: list[tuple[str, str, Any]] = []

    async def close(self) -> None:
        pass

    async def request(
        self, token: str, method: str, path: str, *, params: Any = None, json: Any = None
    ) -> Any:
        self.sent.append((method, path, params))
        if path == "/api/v1/stream-tokens":
            return {"token": "st"}
        if path == "/api/v1/runs":
            return {"runs": self.listed, "next_cursor": None}
        if path == "/api/v1/approvals":
            return {"approvals": [], "next_cursor": None}
        run_id = path.split("/")[4]
        if path.endswith("/logs"):
            return {"logs": [], "next_after": None}
        if path.endswith("/trace"):
            return {"spans": []}
        return self.runs[run_id]


@pytest.fixture
def dashboard() -> Any:
    def open_with(api: FakeApi) -> TestClient:
        app = create_app(DashboardSettings(api_url="http://127.0.0.1:9"))
        app.state.dashboard.api = api
        return TestClient(app, follow_redirects=False, cookies={SESSION_COOKIE: "rst_t"})

    return open_with


def test_a_childs_page_links_its_parent_and_a_parents_page_lists_its_children(
    dashboard: Any,
) -> None:
    kids = [_child(0, "RUNNING"), _child(1, "SUCCEEDED")]
    child = _child(0)["id"]
    link = {"run_id": PARENT, "task": "fan_out", "workflow": "t-parent", "key": "0"}
    cron = {"roost.cron_id": "c1", "roost.cron": "nightly"}  # its parent's, inherited
    api = FakeApi(
        {
            PARENT: _run(PARENT, children=kids),
            child: _run(child, workflow="t-child", parent=link, metadata=cron),
        },
        [],
    )
    client = dashboard(api)

    page = client.get(f"/runs/{child}").text
    parent = re.search(r'<dd id="run-parent">(.*?)</dd>', page, re.S)
    assert parent is not None
    assert f'<a href="/runs/{PARENT}"><code>{PARENT[:8]}</code></a>' in parent[1]
    assert "t-parent › fan_out, key <code>0</code>" in parent[1]
    started = re.search(r'<dd id="run-trigger">(.*?)</dd>', page, re.S)
    assert started is not None and started[1].strip() == "task fan_out of its parent run"
    assert '<section id="children" class="children" aria-labelledby="children-title" hidden>' in (
        page
    )

    page = client.get(f"/runs/{PARENT}").text
    assert 'id="run-parent"' not in page
    rows = re.findall(r'<tr data-child="([^"]+)">(.*?)</tr>', page, re.S)
    assert [r[0] for r in rows] == [c["id"] for c in kids]
    first = rows[0][1]
    assert f'href="/runs/{kids[0]["id"]}"' in first and ">t-child<" in first
    assert '<span class="status status-running">RUNNING</span>' in first
    assert ">fan_out<" in first and '<code data-field="key">0</code>' in first
    assert '<p class="hint" id="children-count" aria-live="polite">2 child runs</p>' in page
    # The page's copy of the run leaves them out: the script reads them on their own.
    run_data = re.search(r'<script type="application/json" id="run-data">(.*?)</script>', page)
    assert run_data is not None and '"children"' not in run_data[1]


def test_a_parent_of_many_lists_the_first_ones_and_links_them_all(dashboard: Any) -> None:
    kids = [_child(i) for i in range(SHOWN + 5)]
    client = dashboard(FakeApi({PARENT: _run(PARENT, children=kids)}, []))
    page = client.get(f"/runs/{PARENT}").text
    assert len(re.findall(r'<tr data-child="[^"]+">', page)) == SHOWN
    assert f"{SHOWN + 5} child runs, the first {SHOWN} shown: " in page
    assert f'<a href="/runs?parent={PARENT}">all of them</a>' in page


def test_the_children_read_says_how_many_are_active_and_lists_the_first_ones(
    dashboard: Any,
) -> None:
    kids = [_child(i, "RUNNING" if i % 2 else "FAILED") for i in range(SHOWN + 3)]
    client = dashboard(FakeApi({PARENT: _run(PARENT, status="SUCCEEDED", children=kids)}, []))
    resp = client.get(f"/runs/{PARENT}/children")
    assert resp.status_code == 200 and resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert (body["status"], body["total"], body["active"]) == ("SUCCEEDED", SHOWN + 3, 51)
    assert body["children"] == kids[:SHOWN]
    assert family(_run(PARENT)) == {"status": "RUNNING", "total": 0, "active": 0, "children": []}


def test_the_runs_page_filters_by_parent_and_inserts_no_run_live(dashboard: Any) -> None:
    summary = {k: v for k, v in _run(CHILD, workflow="t-child").items() if k != "tasks"}
    api = FakeApi({}, [summary])
    client = dashboard(api)
    page = client.get("/runs", params={"parent": f" {PARENT} "}).text
    [(_, _, params)] = [s for s in api.sent if s[1] == "/api/v1/runs"]
    assert params == {"limit": 50, "parent_run_id": PARENT}
    assert f'<a href="/runs/{PARENT}"><code>{PARENT[:8]}</code></a>' in page
    assert f'name="parent" value="{PARENT}"' in page
    assert "data-insert" not in page  # new runs' events do not say whose children they are
    assert f'<tr data-run="{CHILD}">' in page


def test_a_join_says_how_many_runs_it_waits_for() -> None:
    assert wait({"reason": "children", "until": None, "runs": ["a", "b", "c"]}) == (
        "children (3 runs)"
    )
    assert wait({"reason": "children", "until": None, "runs": ["a"]}) == "children (1 run)"
    assert wait({"reason": "sleep", "until": None, "runs": ["a"]}) == "sleep"
