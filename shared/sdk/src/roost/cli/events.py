"""``roost events``: push events and list them."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Column, Table

from roost._errors import RoostError
from roost.cli.console import client, fail, out

events_app = typer.Typer(help="Push events and list them.", no_args_is_help=True)


@events_app.command("push")
def events_push(
    key: Annotated[str, typer.Argument(help="event key, e.g. task:ready")],
    data: Annotated[str, typer.Option("--data", help="event data as JSON")] = "{}",
    idempotency_key: Annotated[
        str | None, typer.Option(help="same key, same event: pushing again starts nothing")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Push an event: every workflow whose on_events matches KEY starts a run."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        fail(f"--data is not valid JSON ({exc}): {data!r}")
    try:
        event = client().events.push(key, payload, idempotency_key=idempotency_key)
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(event.model_dump_json(indent=2))
        return
    out.print(f"event {event.id} ({event.key}) started {len(event.runs)} run(s)", highlight=False)
    for r in event.runs:
        out.print(f"  run {r.id} of {r.workflow}", highlight=False)


@events_app.command("list")
def events_list(
    key: Annotated[str | None, typer.Option(help="only events with exactly this key")] = None,
    limit: Annotated[int, typer.Option(help="page size")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List pushed events, newest first, with the runs each started."""
    try:
        found, _ = client().events.list(key=key, limit=limit)
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(json.dumps([e.model_dump(mode="json") for e in found], indent=2))
        return
    # Ids and keys are never cut: the other columns give way.
    table = Table(
        Column("id", no_wrap=True), Column("key", overflow="fold"), "created", "runs started"
    )
    for e in found:
        table.add_row(
            e.id,
            e.key,
            e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            ", ".join(r.workflow for r in e.runs) or "-",
        )
    out.print(table)
