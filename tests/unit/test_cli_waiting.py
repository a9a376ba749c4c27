"""A WAITING task (a durable task asleep, issue #18) in the CLI: `roost runs show` says
what it waits for and until when (an approval: its question and id), and the live view
(`--watch`) moves a task to WAITING on `task.waiting` and on again with the next
`task.queued` and `task.started` (a `task.approval` on the way says who decided)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from roost._models import Run
from roost._stream import RunEvent
from roost._watch import RunView, decision_text, wait_text
from roost.cli.console import task_table

# 2026-12-07 06:10:03 UTC, and 4 min 12 s before it.
UNTIL = datetime(2026, 12, 7, 6, 10, 3, tzinfo=UTC).timestamp()
NOW = UNTIL - 252


APPROVAL_ID = "3f2a1b2c-1234-4321-abcd-0123456789ab"
ASKED = {
    "reason": "approval",
    "until": UNTIL,
    "question": "Merge PR 7?",
    "details": {"pr": 7},
    "approval_id": APPROVAL_ID,
}


def _run(waiting: bool = True, wait: dict[str, Any] | None = None) -> Run:
    nap: dict[str, Any] = {
        "id": "t1",
        "name": "nap",
        "status": "WAITING" if waiting else "RUNNING",
        "parents": [],
        # A WAITING task's attempt is the one it will resume as (docs/durable.md).
        "attempt": 2 if waiting else 1,
        "waiting": (wait or {"reason": "sleep", "until": UNTIL}) if waiting else None,
    }
    done = {"id": "t0", "name": "prep", "status": "SUCCEEDED", "parents": [], "attempt": 1}
    return Run.model_validate(
        {
            "id": "r1",
            "workflow": "wf",
            "status": "RUNNING",
            "created_at": datetime.now(UTC),
            "tasks": [done, {**nap, "output": None}],
        }
    )


def _text(renderable: Any) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def _ev(seq: int, type: str, data: object = None, attempt: int = 1) -> RunEvent:
    return RunEvent(
        id=seq,
        seq=seq,
        run_id="r1",
        workflow="wf",
        type=type,
        task=None if type.startswith("run.") else "nap",
        attempt=attempt,
        data=data,
        at=NOW - 10 + seq,
    )


@pytest.mark.parametrize(
    ("left", "due"),
    [
        (252, "in 4m 12s"),
        (12.7, "in 12s"),
        (2 * 3600 + 7 * 60 + 5, "in 2h 07m"),
        (3 * 86400 + 4 * 3600, "in 3d 04h"),
        (0.4, "due now"),
        (-0.5, "due now"),
        (-65, "due 1m 05s ago"),  # past its time: the scheduler has not resumed it yet
    ],
)
def test_a_wait_says_its_reason_its_time_in_utc_and_how_long_is_left(left: float, due: str) -> None:
    text = wait_text({"reason": "sleep", "until": UNTIL}, UNTIL - left)
    assert text == f"sleep until 2026-12-07 06:10:03Z ({due})"


def test_a_wait_without_a_time_says_its_reason_and_no_wait_says_nothing() -> None:
    assert wait_text({"reason": "event"}, NOW) == "event"
    assert wait_text({"reason": "event", "key": "ci:done", "until": None}, NOW) == "event ci:done"
    assert wait_text({"reason": "sleep", "until": True}, NOW) == "sleep"
    assert wait_text(None, NOW) == "" and wait_text({}, NOW) == ""


def test_an_approval_wait_says_its_question_and_id_before_its_time() -> None:
    assert wait_text(ASKED, NOW) == (
        f"approval 'Merge PR 7?' (id {APPROVAL_ID}) until 2026-12-07 06:10:03Z (in 4m 12s)"
    )
    # No timeout: no time. A question of many lines is one; a long one is cut.
    untimed = {**ASKED, "until": None, "question": "Merge\n  PR 7?"}
    assert wait_text(untimed, NOW) == f"approval 'Merge PR 7?' (id {APPROVAL_ID})"
    long = wait_text({**ASKED, "until": None, "question": "x" * 300}, NOW)
    assert long == f"approval '{'x' * 39}…' (id {APPROVAL_ID})"
    # An older api's wait (no question, no id yet) says what it can.
    assert wait_text({"reason": "approval", "until": None}, NOW) == "approval"


def test_runs_show_prints_an_approval_wait_whole_on_one_line_markup_and_all() -> None:
    # The question is the task's text: brackets in it are shown, not read as markup.
    asked = {**ASKED, "question": "Deploy [prod] [/bold]?"}
    text = _text(task_table(_run(wait=asked), now=NOW))
    [row] = [line for line in text.splitlines() if "nap" in line]
    assert "WAITING" in row
    assert (
        f"approval 'Deploy [prod] [/bold]?' (id {APPROVAL_ID}) until 2026-12-07 06:10:03Z "
        "(in 4m 12s)" in row
    )


def test_runs_show_prints_a_waiting_task_with_what_it_waits_for_and_until_when() -> None:
    text = _text(task_table(_run(), now=NOW))
    [row] = [line for line in text.splitlines() if "nap" in line]
    assert "WAITING" in row
    assert "sleep until 2026-12-07 06:10:03Z (in 4m 12s)" in row
    # Any other task's row says nothing of waits.
    assert "sleep" not in next(line for line in text.splitlines() if "prep" in line)


def test_the_live_view_moves_a_task_to_waiting_and_on_when_it_resumes() -> None:
    view = RunView(_run(waiting=False))
    view.apply(_ev(1, "task.started", {"worker_id": "w"}))
    view.apply(_ev(2, "task.waiting", {"reason": "sleep", "until": UNTIL}))
    nap = view.tasks["nap"]
    assert nap.status == "WAITING" and nap.waiting == {"reason": "sleep", "until": UNTIL}
    row = next(line for line in _text(view.render(now=NOW)).splitlines() if "nap" in line)
    assert "WAITING" in row and "#" not in row
    assert "sleep until 2026-12-07 06:10:03Z (in 4m 12s)" in row
    # The countdown is rendered afresh: it ticks with no new event.
    assert "(in 4m 02s)" in _text(view.render(now=NOW + 10))

    view.apply(_ev(3, "task.queued", attempt=2))
    assert nap.status == "QUEUED" and nap.attempt == 2 and nap.waiting is None
    assert "sleep until" not in _text(view.render(now=NOW))
    view.apply(_ev(4, "task.started", {"worker_id": "w2"}, attempt=2))
    view.apply(_ev(5, "task.succeeded", {"output": {}, "duration": 0.1}, attempt=2))
    assert nap.status == "SUCCEEDED"


def test_the_live_view_shows_an_approval_then_who_decided_until_the_task_resumes() -> None:
    view = RunView(_run(waiting=False))
    view.apply(_ev(1, "task.started", {"worker_id": "w"}))
    view.apply(_ev(2, "task.waiting", ASKED))
    nap = view.tasks["nap"]
    assert nap.status == "WAITING" and nap.attempt == 2
    row = next(line for line in _text(view.render(now=NOW)).splitlines() if "nap" in line)
    # The latest column is wide enough for the question, the id and the time.
    assert f"approval 'Merge PR 7?' (id {APPROVAL_ID}) until 2026-12-07 06:10:03Z" in row

    # The decision's event is the asking attempt's: the task stays WAITING, resuming as
    # attempt 2, no longer waiting for a person.
    decided = {"approval_id": APPROVAL_ID, "approved": True, "by": "alice", "reason": "[ok]"}
    view.apply(_ev(3, "task.approval", decided, attempt=1))
    assert nap.status == "WAITING" and nap.attempt == 2 and nap.waiting is None
    row = next(line for line in _text(view.render(now=NOW)).splitlines() if "nap" in line)
    assert "approved by alice: [ok]" in row and "approval '" not in row
    view.apply(_ev(4, "task.queued", attempt=2))
    view.apply(_ev(5, "task.started", {"worker_id": "w"}, attempt=2))
    assert nap.status == "RUNNING" and nap.attempt == 2
    assert "approved by alice: [ok]" in _text(view.render(now=NOW))  # until it says more
    assert decision_text({**decided, "approved": False, "reason": None}) == "rejected by alice"


def test_the_live_view_of_a_run_already_waiting_shows_the_wait() -> None:
    view = RunView(_run())
    row = next(line for line in _text(view.render(now=NOW)).splitlines() if "nap" in line)
    assert "WAITING" in row and "sleep until 2026-12-07 06:10:03Z (in 4m 12s)" in row


class _FakeRuns:
    def __init__(self, run: Run, events: list[RunEvent]) -> None:
        self.run, self.events = run, events

    def get(self, run_id: str) -> Run:
        assert run_id == self.run.id
        return self.run

    def subscribe(self, run_id: str) -> Iterator[RunEvent]:
        assert run_id == self.run.id
        return iter(self.events)


class _FakeRoost:
    def __init__(self, runs: _FakeRuns) -> None:
        self.runs = runs


def test_runs_show_watch_follows_a_run_already_under_way(monkeypatch: pytest.MonkeyPatch) -> None:
    from roost.cli import app, console, runs

    events = [
        _ev(1, "task.started", {"worker_id": "w"}),
        _ev(2, "task.waiting", {"reason": "sleep", "until": UNTIL}),
        _ev(3, "task.queued", attempt=2),
        _ev(4, "task.started", {"worker_id": "w"}, attempt=2),
        _ev(5, "task.succeeded", {"output": {}, "duration": 0.1}, attempt=2),
        _ev(6, "run.succeeded"),
    ]
    fake = _FakeRoost(_FakeRuns(_run(), events))
    shown = Console(width=200, record=True)
    monkeypatch.setattr(runs, "client", lambda: fake)
    monkeypatch.setattr(runs, "out", shown)
    monkeypatch.setattr(console, "out", shown)

    plain = CliRunner().invoke(app, ["runs", "show", "r1"])
    assert plain.exit_code == 0, plain.output
    assert "sleep until 2026-12-07 06:10:03Z" in shown.export_text()

    watched = CliRunner().invoke(app, ["runs", "show", "r1", "--watch"])
    assert watched.exit_code == 0, watched.output
    final = shown.export_text()
    assert "run SUCCEEDED" in final and "sleep until" not in final
    assert "SUCCEEDED #2" in final

    both = CliRunner().invoke(app, ["runs", "show", "r1", "--watch", "--json"])
    assert both.exit_code == 1 and "--json" in both.output


def test_an_any_of_wait_names_its_branches() -> None:
    from roost._watch import wait_text

    waiting = {
        "reason": "any",
        "until": None,
        "events": {"closed": {"key": "pr:closed"}, "ci": {"key": "ci:done"}},
    }
    assert wait_text(waiting, 0) == "any of ci, closed"
