"""``roost rate-limits``: fleet-wide rate-limit keys."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Column, Table

from roost._errors import RoostError
from roost.cli.console import client, fail, out

rate_limits_app = typer.Typer(help="Fleet-wide rate limits.", no_args_is_help=True)


@rate_limits_app.command("put")
def rate_limits_put(
    key: Annotated[str, typer.Argument(help="the key, e.g. opencode-sessions")],
    limit: Annotated[int, typer.Argument(help="units allowed")],
    duration: Annotated[
        str | None,
        typer.Option(help="second|minute|hour|day; omit for a concurrency limit"),
    ] = None,
) -> None:
    """Create or change a rate-limit key (takes effect at once)."""
    try:
        found = client().rate_limits.put(key, limit, duration)  # type: ignore[arg-type]
    except RoostError as exc:
        fail(str(exc))
    window = f"per {found.window}" if found.window else "at once (concurrency)"
    out.print(f"{found.key}: {found.limit} {window}", highlight=False)


@rate_limits_app.command("list")
def rate_limits_list(
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Every key: limit, window, units in use and left, tasks waiting."""
    try:
        found = client().rate_limits.list()
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(json.dumps([r.model_dump() for r in found], indent=2))
        return
    table = Table(Column("key", no_wrap=True), "limit", "window", "in use", "left", "waiting")
    for r in found:
        table.add_row(
            r.key,
            str(r.limit),
            r.window or "concurrency",
            str(r.units_in_use),
            str(r.units_left),
            str(r.waiting),
        )
    out.print(table)
