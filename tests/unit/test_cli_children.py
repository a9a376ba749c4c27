"""Child runs (issue #18) in the CLI, against a fake api: `roost runs show` names a
child's parent (its run, workflow, task and key) and lists a parent's children (the
first 20, oldest first, saying how many more and how to list them all); `--json` has
both; `roost runs list --parent` asks for a run's children; a durable task joining its
children reads `children (3 runs)` in `runs show` and `--watch`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from roost import Roost
from roost._models import Run
from roost._stream import RunEvent
from roost._watch import RunView, wait_text
from roost.cli import app, console

PARENT = "0f0e0d0c-0b0a-4998-8776-655443322110"
CHILD = "1a2b3c4d-0000-4000-8000-00000000000"  # + one hex digit: the child's number
T0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


class FakeApi:
    """Answers each (method, path) with its body; records what was sent."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, *, params: Any = None, **_: Any) -> Any:
        self.sent.append((method, path, params))
        return self.answers[(method, path)]


def _child(i: int, status: str = "SUCCEEDED") -> dict[str, Any]:
    return {
        "id": f"{CHILD}{i:x}" if i < 16 else f"{CHILD[:-2]}{i:03x}",
        "workflow": "t-child",
        "status": status,
        "task": "fan_out",
        "key": str(i),
        "created_at": (T0 + timedelta(seconds=i)).isoformat(),
    }


def _run(run_id: str = PARENT, **changes: Any) -> dict[str, Any]:
    task = {"id": "t1", "name": "fan_out", "status": "RUNNING", "parents": [], "attempt": 1}
    return {
        "id": run_id,
        "workflow": "t-parent",
        "workflow_version": "v1",
        "status": "RUNNING",
        "created_at": T0.isoformat(),
        "tasks": [task],
        **changes,
    }


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``roost ARGS`` in this process against a fake api: (exit code, stdout)."""
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(api: FakeApi, *args: str) -> tuple[int, str]:
        client = Roost(token="t")
        client._api = api  # type: ignore[assignment]
        monkeypatch.setattr(console, "Roost", lambda: client)
        done = CliRunner().invoke(app, list(args))
        return done.exit_code, done.stdout

    return invoke


def test_show_lists_a_parents_children_oldest_first_the_first_twenty_and_how_many_more(
    cli: Any,
) -> None:
    children = [_child(i, "RUNNING" if i < 2 else "SUCCEEDED") for i in range(25)]
    api = FakeApi({("GET", f"/api/v1/runs/{PARENT}"): _run(children=children)})
    code, out = cli(api, "runs", "show", PARENT)
    assert code == 0, out
    assert "parent:" not in out  # a run triggered from outside any task
    assert "children: 25 (2 RUNNING, 23 SUCCEEDED)" in out
    rows = [line for line in out.splitlines() if CHILD[:-2] in line]
    assert len(rows) == 20
    assert [c["id"] in row for c, row in zip(children, rows, strict=False)] == [True] * 20
    assert all("t-child" in row and "fan_out" in row for row in rows)
    assert "RUNNING" in rows[0] and rows[0].split("│")[-2].strip() == "0"  # its key, last
    assert "SUCCEEDED" in rows[19] and rows[19].split("│")[-2].strip() == "19"
    assert f"and 5 more: roost runs list --parent {PARENT} --limit 25" in out


def test_show_names_a_child_runs_parent_and_a_run_without_children_lists_none(
    cli: Any,
) -> None:
    child_id = _child(3)["id"]
    parent = {"run_id": PARENT, "task": "fan_out", "workflow": "t-parent", "key": "3"}
    gone = {**parent, "workflow": None}
    api = FakeApi(
        {
            ("GET", f"/api/v1/runs/{child_id}"): _run(child_id, workflow="t-child", parent=parent),
            ("GET", f"/api/v1/runs/{PARENT}"): _run(parent=gone),
        }
    )
    code, out = cli(api, "runs", "show", child_id)
    assert code == 0, out
    assert f"parent: {PARENT} (t-parent › fan_out, key 3)" in out
    assert "children" not in out
    # Its parent run is gone (retention): the link says so.
    code, out = cli(api, "runs", "show", PARENT)
    assert code == 0 and f"parent: {PARENT} (a run since deleted › fan_out, key 3)" in out


def test_show_json_has_the_parent_and_the_children(cli: Any) -> None:
    parent = {"run_id": PARENT, "task": "fan_out", "workflow": "t-parent", "key": "0"}
    api = FakeApi({("GET", f"/api/v1/runs/{PARENT}"): _run(parent=parent, children=[_child(0)])})
    code, out = cli(api, "runs", "show", PARENT, "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["parent"] == parent
    [child] = shown["children"]
    assert (child["id"], child["task"], child["key"], child["status"]) == (
        _child(0)["id"],
        "fan_out",
        "0",
        "SUCCEEDED",
    )


def test_list_parent_asks_for_the_runs_children(cli: Any) -> None:
    summary = {k: v for k, v in _run(_child(1)["id"], workflow="t-child").items() if k != "tasks"}
    api = FakeApi({("GET", "/api/v1/runs"): {"runs": [summary], "next_cursor": None}})
    code, out = cli(api, "runs", "list", "--parent", PARENT)
    assert code == 0, out
    assert api.sent == [("GET", "/api/v1/runs", {"parent_run_id": PARENT, "limit": 20})]
    assert _child(1)["id"] in out
    code, out = cli(api, "runs", "list")
    assert code == 0 and api.sent[-1][2] == {"limit": 20}  # no parent: none asked


JOIN = {"reason": "children", "until": None, "runs": ["a", "b", "c"]}


def test_a_join_says_how_many_child_runs_it_waits_for() -> None:
    now = T0.timestamp()
    assert wait_text(JOIN, now) == "children (3 runs)"
    assert wait_text({**JOIN, "runs": ["a"]}, now) == "children (1 run)"
    assert wait_text({"reason": "children", "until": None}, now) == "children"
    # Only a join counts runs.
    assert wait_text({"reason": "sleep", "until": None, "runs": ["a"]}, now) == "sleep"


def test_runs_show_and_the_live_view_show_a_task_joining_its_children(cli: Any) -> None:
    waiting = {"id": "t1", "name": "fan_in", "status": "WAITING", "parents": [], "attempt": 2}
    run = _run(tasks=[{**waiting, "waiting": JOIN}], children=[_child(i) for i in range(3)])
    code, out = cli(FakeApi({("GET", f"/api/v1/runs/{PARENT}"): run}), "runs", "show", PARENT)
    assert code == 0, out
    [row] = [line for line in out.splitlines() if "fan_in" in line]
    assert "WAITING" in row and "children (3 runs)" in row

    view = RunView(Run.model_validate(_run()))
    view.apply(
        RunEvent(
            id=1,
            seq=1,
            run_id=PARENT,
            workflow="t-parent",
            type="task.waiting",
            task="fan_out",
            attempt=1,
            data=JOIN,
            at=T0.timestamp(),
        )
    )
    shown = Console(width=200, record=True)
    shown.print(view.render(now=T0.timestamp()))
    [row] = [line for line in shown.export_text().splitlines() if "fan_out" in line]
    assert "WAITING" in row and "children (3 runs)" in row
