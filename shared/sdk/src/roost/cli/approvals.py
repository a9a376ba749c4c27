"""``roost approvals``: the questions durable tasks asked people (``ctx.wait_for_approval``):
list, show, approve, reject. A decision is final; one refused (decided already, expired,
the task no longer waiting) or for an unknown id fails with the api's reason."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Column, Table
from rich.text import Text

from roost._errors import RoostError
from roost.cli.console import client, fail, out, utc
from roost_core.approval_models import ApprovalInfo, Decision
from roost_core.statuses import ApprovalStatus

approvals_app = typer.Typer(
    help="Questions durable tasks asked people (ctx.wait_for_approval): list, decide.",
    no_args_is_help=True,
)

# How much of a question a row of the list shows (`roost approvals show` has it whole).
QUESTION_LISTED = 80

_STATUS_STYLE = {
    ApprovalStatus.PENDING: "bold dark_cyan",
    ApprovalStatus.APPROVED: "green",
    ApprovalStatus.REJECTED: "red",
    ApprovalStatus.EXPIRED: "yellow",
    ApprovalStatus.CANCELLED: "magenta",
}
_STATUSES = ", ".join(s.value for s in ApprovalStatus)
REASON_HELP = "why: shown with the decision and returned to the task"


@approvals_app.command("list")
def approvals_list(
    status: Annotated[
        str, typer.Option(help=f"only those in this status ({_STATUSES}), or all")
    ] = "PENDING",
    run: Annotated[str | None, typer.Option("--run", help="only this run's")] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List approvals, newest first: by default those awaiting a decision."""
    wanted = None if status.lower() == "all" else status
    try:
        found = client().approvals.list(status=wanted, run_id=run, limit=limit)
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(json.dumps([a.model_dump(mode="json") for a in found], indent=2))
        return
    if not found:
        which = "" if wanted is None else f"{wanted.upper()} "
        out.print(f"no {which}approvals" + (f" of run {run}" if run else ""), markup=False)
        return
    out.print(approvals_table(found))


def approvals_table(found: list[ApprovalInfo]) -> Table:
    """One row per approval: id, status, where it was asked, the question (cut at
    :data:`QUESTION_LISTED` characters), when it was asked and times out, and who
    decided (a column left out when none of them is decided: the pending list)."""
    decided = any(a.decided_by is not None for a in found)
    # Ids and statuses are never cut: the other columns fold (nothing is left out but
    # the end of a long question).
    table = Table(
        Column("id", no_wrap=True),
        Column("status", no_wrap=True),
        Column("workflow / task", overflow="fold"),
        Column("question", overflow="fold"),
        Column("created / expires", overflow="fold"),
    )
    if decided:
        table.add_column("decided by", overflow="fold")
    for a in found:
        row: list[str | Text] = [
            a.id,
            Text(str(a.status), _STATUS_STYLE.get(a.status, "")),
            Text(f"{a.workflow} / {a.task}"),
            Text(_one_line(a.question, QUESTION_LISTED)),
            Text(f"{utc(a.created_at)}\n{_expiry(a)}"),
        ]
        if decided:
            row.append(Text(a.decided_by or "-"))
        table.add_row(*row)
    return table


@approvals_app.command("show")
def approvals_show(
    approval_id: Annotated[str, typer.Argument(help="approval id")],
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show an approval: its question and details whole, its run and task, and its
    decision once made."""
    try:
        found = client().approvals.get(approval_id)
    except RoostError as exc:
        fail(str(exc))
    if json_out:
        print(found.model_dump_json(indent=2))
        return
    for line in approval_lines(found):
        out.print(line, highlight=False, markup=False, soft_wrap=True)


def approval_lines(a: ApprovalInfo) -> list[str]:
    """``roost approvals show``, line by line (plain text)."""
    lines = [
        f"approval {a.id}: {a.status}",
        f"  question: {a.question}",
        f"  details: {json.dumps(a.details)}",
        f"  run: {a.run_id} ({a.workflow} / {a.task})",
        f"  created: {utc(a.created_at)}",
        f"  expires: {utc(a.expires_at) if a.expires_at else 'never'}",
    ]
    if a.decided_at is not None or a.decided_by is not None:
        lines.append(f"  decided: {utc(a.decided_at)} by {a.decided_by or '?'}")
        lines.append(f"  reason: {a.reason or '-'}")
    if a.status == ApprovalStatus.PENDING:
        lines.append(f"  decide: roost approvals approve|reject {a.id} [--reason TEXT]")
    return lines


@approvals_app.command("approve")
def approvals_approve(
    approval_id: Annotated[str, typer.Argument(help="approval id")],
    reason: Annotated[str | None, typer.Option("--reason", help=REASON_HELP)] = None,
) -> None:
    """Approve: the waiting task resumes, its ctx.wait_for_approval returning approved
    (by this token's name). Final: fails if it was decided already or expired."""
    try:
        decision = client().approvals.approve(approval_id, reason)
    except RoostError as exc:
        fail(str(exc))
    out.print(decision_line(decision), highlight=False, markup=False, soft_wrap=True)


@approvals_app.command("reject")
def approvals_reject(
    approval_id: Annotated[str, typer.Argument(help="approval id")],
    reason: Annotated[str | None, typer.Option("--reason", help=REASON_HELP)] = None,
) -> None:
    """Reject: the waiting task resumes, its ctx.wait_for_approval returning not
    approved. Final: fails if it was decided already or expired."""
    try:
        decision = client().approvals.reject(approval_id, reason)
    except RoostError as exc:
        fail(str(exc))
    out.print(decision_line(decision), highlight=False, markup=False, soft_wrap=True)


def decision_line(d: Decision) -> str:
    """``approval ID approved by NAME at TIME: REASON``."""
    verdict = "approved" if d.approved else "rejected"
    line = f"approval {d.id} {verdict} by {d.by} at {utc(d.at)}"
    return f"{line}: {d.reason}" if d.reason else line


def _expiry(a: ApprovalInfo) -> str:
    return f"expires {utc(a.expires_at)}" if a.expires_at else "no timeout"


def _one_line(text: str, most: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= most else line[: most - 1].rstrip() + "…"
