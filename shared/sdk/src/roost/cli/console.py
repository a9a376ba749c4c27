"""What every command shares: the consoles, failing with a message, the client from the
environment, ``--meta`` pairs, how a time and a run are printed."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Column, Table

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
    error, or (WAITING) what it waits for and until when, counted down from ``now``."""
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
        table.add_row(
            t.name,
            t.status,
            str(t.attempt),
            t.worker_id or "-",
            duration(t.started_at, t.finished_at),
            detail[:120],
        )
    return table


def print_run(run: Run) -> None:
    out.print(
        f"run [bold]{run.id}[/] of {run.workflow} (version {run.workflow_version}): "
        f"[bold]{run.status}[/]",
        highlight=False,
    )
    out.print(task_table(run))
    if run.error:
        out.print(f"[red]{run.error.get('message')}[/]", highlight=False)
