"""A live terminal view of one run (``roost run WF --watch``, ``roost runs show ID
--watch``), built from its events: each task's state, progress bar, duration and latest
word (for a WAITING task: what it waits for and until when), updated as events arrive."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Column, Table
from rich.text import Text

from roost._models import Run
from roost._stream import RunEvent

_STYLE = {
    "PENDING": "dim",
    "QUEUED": "cyan",
    "RETRYING": "yellow",
    "RUNNING": "bold blue",
    "WAITING": "bold dark_cyan",  # a durable task asleep: holds nothing, comes back
    "SUCCEEDED": "green",
    "FAILED": "bold red",
    "TIMED_OUT": "bold red",
    "CANCELLED": "magenta",
}

_TASK_STATUS = {
    "task.queued": "QUEUED",
    "task.redispatched": "QUEUED",
    "task.started": "RUNNING",
    "task.retrying": "RETRYING",
    "task.waiting": "WAITING",
    "task.succeeded": "SUCCEEDED",
    "task.failed": "FAILED",
    "task.timed_out": "TIMED_OUT",
    "task.cancelled": "CANCELLED",
}


# How much of an approval's question a WAITING task's line shows (``roost approvals
# show`` has it whole): enough to know it, leaving room for the approval's id and time.
QUESTION_SHOWN = 40


def _span(seconds: float) -> str:
    """``12s``, ``4m 12s``, ``2h 07m``, ``3d 04h``: as precise as a countdown needs."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def wait_text(waiting: Mapping[str, Any] | None, now: float) -> str:
    """What a WAITING task waits for (its ``waiting``, or its ``task.waiting`` event's
    data), as the CLI shows it: ``sleep until 2026-12-07 06:10:03Z (in 4m 12s)``. The
    time is UTC to the second, as the dashboard shows times; the countdown is from
    ``now``, and a wait past its time (the scheduler has not resumed it yet) says so.
    A join of child runs says how many: ``children (3 runs)``.
    An approval says its question (on one line, cut at :data:`QUESTION_SHOWN`
    characters) and its id, which ``roost approvals approve`` takes: ``approval 'Merge
    PR 7?' (id 3f…) until …``, the id before the time so a narrow column cuts the
    countdown first. Rich markup: what the task wrote (the question) is escaped."""
    if not waiting:
        return ""
    text = str(waiting.get("reason") or "wait")
    if waiting.get("key"):  # an event wait (the next slice of #18): which event
        text += f" {waiting['key']}"
    if waiting.get("reason") == "approval":
        text += _asked(waiting.get("question"), waiting.get("approval_id"))
    text += _runs_waited(waiting)
    text += _branches(waiting)
    until = waiting.get("until")
    # bool is an int: a malformed wait must not read as 1970.
    if isinstance(until, int | float) and not isinstance(until, bool):
        stamp = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        left = until - now
        if left >= 1:
            due = f"in {_span(left)}"
        elif left > -1:
            due = "due now"
        else:
            due = f"due {_span(-left)} ago"
        text += f" until {stamp} ({due})"
    return text


def _runs_waited(waiting: Mapping[str, Any]) -> str:
    """`` (3 runs)``: how many child runs a join waits for (its ``runs``: their ids; ``roost
    runs show`` lists the run's children); empty for any other wait."""
    runs = waiting.get("runs")
    if waiting.get("reason") != "children" or not isinstance(runs, list):
        return ""
    return f" ({len(runs)} run{'' if len(runs) == 1 else 's'})"


def _branches(waiting: Mapping[str, Any]) -> str:
    """`` of ci, closed``: the named event branches of a ``ctx.wait_for_any`` (its timer,
    if it has one, is the ``until`` shown after); empty for any other wait."""
    events = waiting.get("events")
    if waiting.get("reason") != "any" or not isinstance(events, dict) or not events:
        return ""
    return " of " + escape(", ".join(sorted(str(name) for name in events)))


def _asked(question: Any, approval_id: Any) -> str:
    """`` 'Merge PR 7?' (id …)``: an approval's question on one line, short, and its id."""
    text = ""
    if isinstance(question, str) and question.strip():
        line = " ".join(question.split())  # a question of many lines, on one
        if len(line) > QUESTION_SHOWN:
            line = line[: QUESTION_SHOWN - 1].rstrip() + "…"
        text += f" {escape(repr(line))}"
    if approval_id:
        text += f" (id {escape(str(approval_id))})"
    return text


def decision_text(data: Mapping[str, Any]) -> str:
    """A ``task.approval`` event's decision, as the live view shows it until the task
    says more: ``approved by alice: CI green``. Rich markup, escaped."""
    if data.get("status") == "EXPIRED":
        return "approval expired: no decision in time"
    verdict = "approved" if data.get("approved") else "rejected"
    text = f"{verdict} by {data.get('by') or '?'}"
    if data.get("reason"):
        text += f": {' '.join(str(data['reason']).split())}"
    return escape(text)


@dataclass
class TaskView:
    name: str
    status: str
    attempt: int = 0
    progress: float | None = None
    detail: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    # While WAITING: what it waits for ({"reason", "until"}); its countdown is rendered
    # afresh each time, so it ticks between events.
    waiting: Mapping[str, Any] | None = None

    def latest(self, now: float) -> str:
        if self.status == "WAITING" and self.waiting:
            return wait_text(self.waiting, now)
        return self.detail

    def duration(self, now: float) -> str:
        if self.started_at is None:
            return ""
        seconds = (self.finished_at or now) - self.started_at
        return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


class RunView:
    """A run's state as its events tell it; ``apply`` each event, ``render`` any time."""

    def __init__(self, run: Run) -> None:
        self.run_id = run.id
        self.workflow = run.workflow
        self.status: str = run.status.value
        self.tasks: dict[str, TaskView] = {
            t.name: TaskView(t.name, t.status.value, t.attempt, waiting=t.waiting)
            for t in run.tasks
        }
        self.error: str | None = None

    def apply(self, event: RunEvent) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        if event.task is None:
            if event.type.startswith("run."):
                self.status = event.type.removeprefix("run.").upper()
                if event.type == "run.queued" and data.get("replay"):
                    self.error = None
                if "error" in data and data["error"]:
                    self.error = str(data["error"].get("message", data["error"]))
            return
        task = self.tasks.setdefault(event.task, TaskView(event.task, "PENDING"))
        if event.type == "task.approval":
            # A person decided: the task is still WAITING (its next attempt comes with
            # task.queued) but no longer for them. Its attempt is the one that asked:
            # the number shown stays the one the task resumes as.
            task.waiting = None
            task.detail = decision_text(data)
            return
        if event.attempt is not None:
            task.attempt = event.attempt
        status = _TASK_STATUS.get(event.type)
        if status is not None:
            task.status = status
            task.waiting = None  # a wait lasts until the task's next status
        if event.type == "task.waiting":
            # The attempt ended; the task resumes as its next attempt, which is the
            # number `roost.runs.get` already shows for a WAITING task.
            task.waiting = data
            task.progress = None
            task.finished_at = event.at if task.started_at is not None else None
            if event.attempt is not None:
                task.attempt = event.attempt + 1
        elif event.type == "task.queued":
            task.started_at = task.finished_at = None
            task.progress = None
        elif event.type == "task.started":
            task.started_at = event.at
        elif event.type == "task.succeeded":
            task.finished_at = event.at
            task.progress = 1.0
            if task.started_at is None and isinstance(data.get("duration"), int | float):
                task.started_at = event.at - data["duration"]
        elif event.type in ("task.failed", "task.timed_out", "task.cancelled", "task.retrying"):
            task.finished_at = event.at if task.started_at is not None else None
            error = data.get("error") or {}
            task.detail = f"{error.get('type', '')}: {error.get('message', '')}".strip(": ")
            if event.type == "task.retrying":
                task.detail = f"retrying (attempt {data.get('next_attempt')}): {task.detail}"
        elif event.type == "task.progress":
            task.progress = float(data.get("fraction", 0.0))
            if data.get("message"):
                task.detail = str(data["message"])
        elif event.type == "task.log":
            task.detail = str(data.get("message", ""))

    @property
    def ended(self) -> bool:
        return self.status in ("SUCCEEDED", "FAILED", "CANCELLED")

    def render(self, now: float | None = None) -> RenderableType:
        now = time.time() if now is None else now
        table = Table(
            Column("task", no_wrap=True),
            Column("status", no_wrap=True),
            Column("progress", width=22),
            Column("time", justify="right", no_wrap=True),
            # Wide enough for an approval's question, id and time (wait_text).
            Column("latest", overflow="ellipsis", no_wrap=True, max_width=120),
            title=f"run {self.run_id} of {self.workflow}",
            title_justify="left",
        )
        # A copy: the live display may render from its own thread while events apply.
        for task in list(self.tasks.values()):
            style = _STYLE.get(task.status, "")
            done = 1.0 if task.status == "SUCCEEDED" else (task.progress or 0.0)
            pulse = task.status == "RUNNING" and task.progress is None
            # A WAITING task's number is the attempt it will resume as: not shown, so
            # "WAITING #2" cannot read as a second attempt already under way.
            numbered = task.attempt > 1 and task.status != "WAITING"
            table.add_row(
                task.name,
                Text(task.status + (f" #{task.attempt}" if numbered else ""), style),
                ProgressBar(total=1.0, completed=done, width=20, pulse=pulse),
                task.duration(now),
                task.latest(now),
            )
        status = Text(f"run {self.status}", _STYLE.get(self.status, "bold"))
        if self.error:
            status.append(f"  {self.error}", "red")
        return Group(table, status)
