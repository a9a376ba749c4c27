"""``roost crons``: crons made here or declared by workflows (``on_crons``): create,
list, show, pause, resume, delete."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from roost._errors import RoostError
from roost._models import Cron
from roost.cli.console import client, fail, meta_pairs, out, utc

crons_app = typer.Typer(help="Crons: runs started at every fire time.", no_args_is_help=True)


@crons_app.command("create")
def crons_create(
    workflow: Annotated[str, typer.Argument(help="workflow name")],
    name: Annotated[str, typer.Argument(help="the cron's name, unique per workflow")],
    expression: Annotated[
        str, typer.Argument(help="five fields ('0 3 * * *'), @hourly-style, or six with seconds")
    ],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the expression")] = "UTC",
    input: Annotated[str, typer.Option("--input", help="each run's input as JSON")] = "{}",
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="each run's metadata KEY=VALUE (repeatable)")
    ] = None,
    catch_up: Annotated[
        str,
        typer.Option(help="times missed while every scheduler was down: latest, all or none"),
    ] = "latest",
    paused: Annotated[bool, typer.Option("--paused", help="create it paused")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Create a cron: a run of WORKFLOW at every fire time of EXPRESSION."""
    try:
        payload = json.loads(input)
    except json.JSONDecodeError as exc:
        fail(f"--input is not valid JSON ({exc}): {input!r}")
    pairs = meta_pairs(meta)
    try:
        cron = client().crons.create(
            workflow,
            name,
            expression,
            input=payload,
            timezone=tz,
            metadata=pairs,
            catch_up=catch_up,
            paused=paused,
        )
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(cron.model_dump_json(indent=2))
        return
    state = "paused" if cron.paused else f"next at {utc(cron.next_fire_at)}"
    out.print(
        f"cron {cron.id} {cron.name!r} of {cron.workflow}: {cron.expression} "
        f"({cron.timezone}), {state}",
        highlight=False,
        markup=False,
    )


@crons_app.command("list")
def crons_list(
    workflow: Annotated[str | None, typer.Option(help="only this workflow's crons")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List crons, oldest first: their schedule, next fire time and state."""
    try:
        found = client().crons.list(workflow)
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(json.dumps([c.model_dump(mode="json") for c in found], indent=2))
        return
    # Ids and states are never cut: the other columns fold (nothing is left out).
    table = Table(
        Column("id", no_wrap=True),
        Column("workflow", overflow="fold"),
        Column("name", overflow="fold"),
        Column("schedule", overflow="fold"),
        Column("next fire", overflow="fold"),
        Column("state", no_wrap=True),
    )
    for c in found:
        schedule = f"{c.expression} ({c.timezone})"
        table.add_row(c.id, c.workflow, c.name, schedule, utc(c.next_fire_at), _state(c))
    out.print(table)


@crons_app.command("get")
def crons_get(
    cron_id: Annotated[str, typer.Argument(help="cron id")],
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show a cron and the latest runs it started."""
    try:
        cron = client().crons.get(cron_id)
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(cron.model_dump_json(indent=2))
        return
    _print(cron)


@crons_app.command("pause")
def crons_pause(cron_id: Annotated[str, typer.Argument(help="cron id")]) -> None:
    """Pause a cron: its fire times pass without runs."""
    try:
        cron = client().crons.pause(cron_id)
    except RoostError as exc:
        fail(str(exc))
    out.print(
        f"cron {cron.id} {cron.name!r} of {cron.workflow}: paused", highlight=False, markup=False
    )


@crons_app.command("resume")
def crons_resume(cron_id: Annotated[str, typer.Argument(help="cron id")]) -> None:
    """Resume a paused cron from its next fire time after now."""
    try:
        cron = client().crons.resume(cron_id)
    except RoostError as exc:
        fail(str(exc))
    out.print(
        f"cron {cron.id} {cron.name!r} of {cron.workflow}: resumed, next at "
        f"{utc(cron.next_fire_at)}",
        highlight=False,
        markup=False,
    )


@crons_app.command("delete")
def crons_delete(cron_id: Annotated[str, typer.Argument(help="cron id")]) -> None:
    """Delete a cron made at run time (its runs stay; a declared one is refused)."""
    try:
        client().crons.delete(cron_id)
    except RoostError as exc:
        fail(str(exc))
    out.print(f"cron {cron_id} deleted", highlight=False)


def _state(cron: Cron) -> str:
    state = "paused" if cron.paused else "active"
    return f"{state}, declared" if cron.declared else state


def _print(cron: Cron) -> None:
    out.print(
        f"cron [bold]{cron.id}[/] {escape(repr(cron.name))} of {escape(cron.workflow)}: "
        f"[bold]{_state(cron)}[/]",
        highlight=False,
    )
    lines = [
        ("schedule", f"{cron.expression} ({cron.timezone}), catch-up {cron.catch_up}"),
        ("next fire", utc(cron.next_fire_at)),
        ("last fire", utc(cron.last_fire_at)),
        ("input", json.dumps(cron.input)),
        ("metadata", " ".join(f"{k}={v}" for k, v in sorted(cron.metadata.items())) or "-"),
    ]
    for label, value in lines:
        out.print(f"  {label}: {value}", highlight=False, markup=False)
    if not cron.recent_runs:
        out.print("  no runs yet", highlight=False)
        return
    table = Table(Column("run", no_wrap=True), "fire time", "status")
    for r in cron.recent_runs:
        table.add_row(r.run_id, utc(r.fire_at), r.status or "deleted")
    out.print(table)
