"""``roost scheduled``: runs scheduled once (``roost run WF --at`` / ``--in``, or
``wf.schedule``): list, show, reschedule, cancel; and the scheduling half of
``roost run``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from roost._durations import seconds
from roost._errors import RoostError
from roost._models import ScheduledRun
from roost._roost import Roost
from roost.cli.console import client, fail, out, utc

scheduled_app = typer.Typer(
    help="Runs scheduled once, for later (roost run WF --at/--in).", no_args_is_help=True
)

AT_HELP = "an ISO 8601 time with its zone, e.g. 2030-01-01T03:00:00Z"
IN_HELP = "a delay from now, e.g. 90s, 15m, 1h30m"


def when(at: str | None, delay: str | None) -> tuple[datetime | None, float | None]:
    """``--at`` / ``--in`` as the SDK takes them: exactly one, checked before anything is
    sent, each error naming its option."""
    if (at is None) == (delay is None):
        fail(f"give exactly one of --at ({AT_HELP}) or --in ({IN_HELP})")
    if at is not None:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            fail(f"--at {at!r} is not an ISO 8601 time: use {AT_HELP}")
        if moment.tzinfo is None:
            # A zone-less time would mean this machine's zone here and UTC elsewhere:
            # say which one.
            fail(f"--at {at!r} has no time zone: add one, e.g. {at}Z or {at}+02:00")
        return moment, None
    try:
        return None, seconds(delay, "--in")
    except RoostError as exc:
        fail(str(exc))


def schedule_run(
    roost: Roost,
    workflow: str,
    payload: Any,
    metadata: dict[str, str],
    at: str | None,
    delay: str | None,
) -> None:
    """``roost run WF --at ISO`` / ``--in DURATION``: schedule the run instead of
    starting it, printing the scheduled run's id and time."""
    moment, delay_seconds = when(at, delay)
    try:
        found = roost.scheduled.create(
            workflow, payload, at=moment, delay=delay_seconds, metadata=metadata
        )
    except RoostError as exc:
        fail(str(exc))
    out.print(
        f"scheduled run {found.id} of {found.workflow} at {utc(found.trigger_at)} {found.status}",
        highlight=False,
        markup=False,
    )


@scheduled_app.command("list")
def scheduled_list(
    workflow: Annotated[str | None, typer.Option(help="only this workflow's")] = None,
    status: Annotated[
        str | None, typer.Option(help="only SCHEDULED, FIRED, CANCELLED or FAILED ones")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List scheduled runs, soonest first, with the run each started."""
    try:
        found = client().scheduled.list(workflow, status)
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(json.dumps([s.model_dump(mode="json") for s in found], indent=2))
        return
    # Ids and statuses are never cut: the other columns fold (nothing is left out).
    table = Table(
        Column("id", no_wrap=True),
        Column("workflow", overflow="fold"),
        Column("at", overflow="fold"),
        Column("status", no_wrap=True),
        Column("run", overflow="fold"),
    )
    for s in found:
        table.add_row(s.id, s.workflow, utc(s.trigger_at), s.status, s.run_id or "-")
    out.print(table)


@scheduled_app.command("get")
def scheduled_get(
    scheduled_id: Annotated[str, typer.Argument(help="scheduled run id")],
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show a scheduled run (and the run it started, once it has fired)."""
    try:
        found = client().scheduled.get(scheduled_id)
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(found.model_dump_json(indent=2))
        return
    _print(found)


@scheduled_app.command("reschedule")
def scheduled_reschedule(
    scheduled_id: Annotated[str, typer.Argument(help="scheduled run id")],
    at: Annotated[str | None, typer.Option("--at", help=AT_HELP)] = None,
    delay: Annotated[str | None, typer.Option("--in", help=IN_HELP)] = None,
) -> None:
    """Move a scheduled run that has not fired to another time."""
    moment, delay_seconds = when(at, delay)
    try:
        found = client().scheduled.reschedule(scheduled_id, at=moment, delay=delay_seconds)
    except RoostError as exc:
        fail(str(exc))
    out.print(
        f"scheduled run {found.id} of {found.workflow} now at {utc(found.trigger_at)}",
        highlight=False,
        markup=False,
    )


@scheduled_app.command("cancel")
def scheduled_cancel(
    scheduled_id: Annotated[str, typer.Argument(help="scheduled run id")],
) -> None:
    """Cancel a scheduled run that has not fired."""
    try:
        found = client().scheduled.cancel(scheduled_id)
    except RoostError as exc:
        fail(str(exc))
    out.print(
        f"scheduled run {found.id} of {found.workflow} {found.status}",
        highlight=False,
        markup=False,
    )


def _print(found: ScheduledRun) -> None:
    lines = [
        f"scheduled run {found.id} of {found.workflow}: {found.status}",
        f"  at: {utc(found.trigger_at)}",
        f"  input: {json.dumps(found.input)}",
        "  metadata: " + (" ".join(f"{k}={v}" for k, v in sorted(found.metadata.items())) or "-"),
        f"  created: {utc(found.created_at)}",
    ]
    if found.run_id is not None:
        lines.append(f"  fired: {utc(found.fired_at)} as run {found.run_id}")
    if found.error:  # FAILED: the workflow's newest version refused the run
        lines.append(f"  error: {found.error}")
    for line in lines:
        out.print(line, highlight=False, markup=False)
