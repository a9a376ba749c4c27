"""``roost workers``: worker processes as their heartbeats tell."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Column, Table
from rich.text import Text

from roost._errors import RoostError
from roost.cli.console import client, fail, out

workers_app = typer.Typer(help="Inspect worker processes.", no_args_is_help=True)


@workers_app.command("list")
def workers_list(
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Worker processes from their heartbeats: alive, draining, stopped or dead, slots
    busy, workflows, versions, labels."""
    try:
        found = client().workers.list()
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(json.dumps(found, indent=2))
        return
    table = Table(
        Column("worker", no_wrap=True),
        Column("status", no_wrap=True),
        "busy",
        "workflows",
        Column("version", no_wrap=True),
        "sdk",
        "labels",
        "last heartbeat",
    )
    for w in found:
        table.add_row(
            w["id"],
            Text(w["status"], style=_WORKER_STYLE.get(w["status"], "")),
            f"{w['running']}/{w['slots']}",
            ", ".join(w["workflows"]),
            w.get("version") or "-",  # .get: an older api does not send them
            w.get("sdk_version") or "-",
            Text(label_text(w.get("labels"))),  # as the worker said them, never markup
            w["last_heartbeat_at"],
        )
    out.print(table)


def label_text(labels: dict[str, Any] | None) -> str:
    """A worker's labels on one line by name, ``gpu=a100 memory_gb=64`` ("-" for none)."""
    if not labels:
        return "-"
    return " ".join(f"{key}={value}" for key, value in sorted(labels.items()))


_WORKER_STYLE = {"alive": "green", "draining": "yellow", "stopped": "dim", "dead": "red"}
