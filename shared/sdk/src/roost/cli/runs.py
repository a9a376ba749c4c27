"""``roost run`` and ``roost runs``: trigger a run, then inspect, follow, cancel and
replay runs."""

from __future__ import annotations

import json
import warnings
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from roost._errors import RoostError, RoostWarning
from roost._models import Run
from roost._roost import Roost
from roost.cli.console import client, duration, err, fail, meta_pairs, out, print_run
from roost.cli.scheduled import AT_HELP, IN_HELP, schedule_run

runs_app = typer.Typer(help="Inspect runs.", no_args_is_help=True)


def run(
    workflow: Annotated[str, typer.Argument(help="workflow name")],
    input: Annotated[str, typer.Option("--input", help="run input as JSON")] = "{}",
    wait: Annotated[bool, typer.Option("--wait", help="wait for the run to end")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="watch the run live (its tasks, progress, logs)")
    ] = False,
    idempotency_key: Annotated[str | None, typer.Option(help="same key, same run")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds to wait with --wait")] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="metadata KEY=VALUE (repeatable)")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help=f"schedule it for later: {AT_HELP}")
    ] = None,
    delay: Annotated[
        str | None, typer.Option("--in", help=f"schedule it for later: {IN_HELP}")
    ] = None,
) -> None:
    """Trigger a run of a registered workflow (or, with --at or --in, schedule one)."""
    try:
        payload = json.loads(input)
    except json.JSONDecodeError as exc:
        fail(f"--input is not valid JSON ({exc}): {input!r}")
    pairs = meta_pairs(meta)
    roost = client()
    if at is not None or delay is not None:
        if wait or watch or idempotency_key is not None:
            fail(
                "--at and --in schedule the run for later: --wait, --watch and "
                "--idempotency-key do not apply (watch it once it has fired)"
            )
        schedule_run(roost, workflow, payload, pairs, at, delay)
        return
    try:
        # A warning (no live worker serves the workflow: issue #20) goes to stderr as a
        # plain line, not Python's file:line form; the run was created all the same.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RoostWarning)
            created = roost.workflows.trigger(
                workflow, payload, idempotency_key=idempotency_key, metadata=pairs
            )
        assert isinstance(created, Run)  # not respond_async: the api created it
        out.print(f"run {created.id} {created.status}", highlight=False)
        for w in caught:
            err.print(f"[bold yellow]warning:[/] {escape(str(w.message))}", soft_wrap=True)
        if watch:
            _watch(roost, created)
        elif wait:
            final = roost.runs.wait(created.id, timeout)
            print_run(final)
            if final.status != "SUCCEEDED":
                raise typer.Exit(1)
    except RoostError as exc:
        fail(str(exc))


@runs_app.command("list")
def runs_list(
    workflow: Annotated[str | None, typer.Option(help="only this workflow")] = None,
    status: Annotated[str | None, typer.Option(help="only this status")] = None,
    limit: Annotated[int, typer.Option(help="page size")] = 20,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="only runs with metadata KEY=VALUE (repeatable)"),
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option("--parent", help="only the runs triggered inside this run's tasks"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List runs, newest first (with --parent: a run's child runs)."""
    pairs = meta_pairs(meta)
    try:
        runs, _ = client().runs.list(
            workflow=workflow, status=status, limit=limit, meta=pairs, parent_run_id=parent
        )
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
        return
    table = Table("id", "workflow", "status", "created", "duration", "metadata")
    for r in runs:
        table.add_row(
            r.id,
            r.workflow,
            r.status,
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            duration(r.started_at, r.finished_at),
            " ".join(f"{k}={v}" for k, v in sorted(r.metadata.items())),
        )
    out.print(table)


@runs_app.command("cancel")
def runs_cancel(
    run_id: Annotated[str, typer.Argument(help="run id")],
    task: Annotated[
        str | None,
        typer.Option(
            "--task", help="cancel only this task (its descendants never start; others go on)"
        ),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="why (with --task)")] = None,
) -> None:
    """Cancel a run: queued tasks never start, running ones are interrupted. With
    --task, only that task and its descendants."""
    try:
        if task is None:
            found = client().runs.cancel(run_id)
        else:
            status = client().runs.cancel_task(run_id, task, reason)
            out.print(f"task {task} of run {run_id}: {status}")
            return
    except RoostError as exc:
        fail(str(exc))
    print_run(found)


@runs_app.command("replay")
def runs_replay(run_id: Annotated[str, typer.Argument(help="run id")]) -> None:
    """Re-run an ended run's failed and cancelled tasks and their descendants."""
    try:
        found = client().runs.replay(run_id)
    except RoostError as exc:
        fail(str(exc))
    print_run(found)


def _watch(roost: Roost, run: Run) -> None:
    """Follow ``run`` live until it ends; exit 1 unless it succeeded."""
    from rich.live import Live

    from roost._watch import RunView

    view = RunView(run)
    # The display renders the view afresh at each refresh (8 a second, however many
    # events come), so a WAITING task's countdown ticks while no event comes.
    with Live(console=out, refresh_per_second=8, get_renderable=view.render):
        for event in roost.runs.subscribe(run.id):
            view.apply(event)
    if view.status != "SUCCEEDED":
        raise typer.Exit(1)


@runs_app.command("logs")
def runs_logs(
    run_id: Annotated[str, typer.Argument(help="run id")],
    task: Annotated[str | None, typer.Option(help="only this task's lines")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new lines until the run ends")
    ] = False,
) -> None:
    """Print a run's log lines (every task's, oldest first)."""
    from datetime import datetime

    def show(at: float, name: str | None, attempt: int | None, message: str) -> None:
        stamp = datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]
        out.print(f"[dim]{stamp}[/] [bold]{name}[/]#{attempt} {message}", highlight=False)

    roost = client()
    try:
        if not follow:
            after: int | None = 0
            while after is not None:
                lines, after = roost.runs.logs(run_id, task=task, after=after, limit=500)
                for line in lines:
                    show(line["at"], line["task"], line["attempt"], line["message"])
            return
        for event in roost.runs.subscribe(run_id, types=["task.log", "run.*"]):
            if event.type == "task.log" and (task is None or event.task == task):
                show(event.at, event.task, event.attempt, str(event.data.get("message", "")))
    except RoostError as exc:
        fail(str(exc))


@runs_app.command("trace")
def runs_trace(
    run_id: Annotated[str, typer.Argument(help="run id")],
    json_out: Annotated[bool, typer.Option("--json", help="print the spans as JSON")] = False,
) -> None:
    """Show where a run spent its time: its trace as a waterfall, one line per span,
    indented under its parent, with durations and bars (from Roost's own span store:
    no collector needed)."""
    from roost._waterfall import render

    try:
        found = client().runs.trace(run_id)
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(found.model_dump_json(indent=2))
        return
    out.print(render(found, width=out.width))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="run id")],
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="watch the run live until it ends (as run --watch)")
    ] = False,
) -> None:
    """Show a run and each of its tasks (a WAITING one with what it waits for and until
    when), the task it was triggered inside if it is a child run, and the runs its own
    tasks triggered (its children); with --watch, follow it live."""
    if watch and json_out:
        fail("--watch shows a live table: it does not go with --json")
    roost = client()
    try:
        found = roost.runs.get(run_id)
        if watch:
            # A run already under way (a durable task asleep for hours, say): its event
            # history replays onto the view, then live events follow.
            _watch(roost, found)
            return
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(found.model_dump_json(indent=2))
        return
    print_run(found)
