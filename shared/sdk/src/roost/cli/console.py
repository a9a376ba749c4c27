"""What every command shares: the consoles, failing with a message, the client from the
environment, ``--meta`` pairs, how a time and a run are printed."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from roost._models import Run
from roost._roost import Roost
from roost._watch import wait_text
from roost_core import metadata as run_metadata
from roost_core.statuses import TaskStatus

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def client() -> Roost:
    try:
        return Roost()
    except Exception as exc:
        fail(f"bad settings: {exc}")


def meta_pairs(pairs: list[str] | None) -> dict[str, str]:
    """``--meta KEY=VALUE`` options as run metadata (a bad pair stops the command)."""
    try:
        return run_metadata.parse_pairs(pairs or [])
    except ValueError as exc:
        fail(f"--meta: {exc}")


def duration(start: Any, end: Any) -> str:
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds() * 1000:.0f} ms"


def utc(at: datetime | None) -> str:
    """A time as every schedule command prints it: UTC, to the second ("-" for none)."""
    if at is None:
        return "-"
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def task_table(run: Run, now: float | None = None) -> Table:
    """A run's tasks, one row each: status, attempt, worker, duration, and its output,
    error, or (WAITING) what it waits for and until when, counted down from ``now``, or
    (QUEUED, issue #21) why no worker can take it yet."""
    now = time.time() if now is None else now
    # Task names are never cut: the other columns give way.
    table = Table(
        Column("task", no_wrap=True), "status", "attempt", "worker", "duration", "output / error"
    )
    for t in run.tasks:
        detail = json.dumps(t.output) if t.output is not None else ""
        if t.error:
            detail = f"{t.error.get('type')}: {t.error.get('message')}"
        if t.status == TaskStatus.WAITING:
            detail = wait_text(t.waiting, now)
        elif t.status == TaskStatus.QUEUED and t.placement and "waits" in t.placement:
            detail = t.placement["waits"]
        table.add_row(
            t.name,
            t.status,
            str(t.attempt),
            t.worker_id or "-",
            duration(t.started_at, t.finished_at),
            detail[:120],
        )
    return table


# How many of a run's child runs ``roost runs show`` lists (oldest first); ``roost runs
# list --parent`` lists them all.
CHILDREN_SHOWN = 20


def parent_line(run: Run) -> str | None:
    """``parent: <run id> (<workflow> › <task>, key K)``: the task a child run was
    triggered inside (issue #18); None for a run that is no one's child. Plain text."""
    p = run.parent
    if p is None:
        return None
    workflow = p.workflow or "a run since deleted"
    return f"parent: {p.run_id} ({workflow} › {p.task}, key {p.key})"


def children_table(run: Run) -> Table | None:
    """The runs triggered inside ``run``'s tasks (child runs, issue #18), the first
    :data:`CHILDREN_SHOWN`, oldest first: id, workflow, status, spawning task, key;
    titled with how many there are in each status. None for a run without any."""
    if not run.children:
        return None
    counts = run.children_by_status or Counter(str(c.status) for c in run.children)
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    total = sum(counts.values())
    table = Table(
        Column("id", no_wrap=True),
        "workflow",
        "status",
        "task",
        "key",
        title=f"children: {total} ({tally})",
        title_justify="left",
    )
    for c in run.children[:CHILDREN_SHOWN]:
        # What a workflow or task is named is shown as it is, never read as markup.
        table.add_row(c.id, Text(c.workflow), str(c.status), Text(c.task), Text(c.key))
    return table


def print_run(run: Run) -> None:
    priority = f", priority {run.priority}" if run.priority != 1 else ""
    out.print(
        f"run [bold]{run.id}[/] of {run.workflow} (version {run.workflow_version}): "
        f"[bold]{run.status}[/]{priority}",
        highlight=False,
    )
    parent = parent_line(run)
    if parent:
        out.print(Text(parent), highlight=False)
    out.print(task_table(run))
    children = children_table(run)
    if children is not None:
        out.print(children)
        total = sum(run.children_by_status.values()) or len(run.children)
        more = total - min(CHILDREN_SHOWN, len(run.children))
        if more > 0:
            out.print(
                f"and {more} more: roost runs list --parent {run.id} --limit {total}",
                highlight=False,
            )
    if run.error:
        out.print(f"[red]{run.error.get('message')}[/]", highlight=False)
