"""Durable tasks waiting for a person's decision (issue #18, ``ctx.wait_for_approval``).

A durable task that asks suspends like any wait (roost_core.engine.waits), and its
question becomes a PENDING approval in the transaction that suspends it. A person
approves or rejects it through the api (HTTP, ``roost approvals``, the dashboard): the
decision is written into the wait's journal entry and the task's next attempt is due at
once, so the scheduler's timer loop sends it, and the task replays up to the wait and
gets the decision back. A decision is final: a second one, one after the timeout, or one
for a task no longer waiting is refused (409) and changes nothing. A timeout that passes
first sends the task with the entry empty (the approval EXPIRED, in the statement that
sends it, roost_core queries ``fire_due_retries_*``), and the task raises
WaitTimeoutError. The run is locked before the approval, as in every transition."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from roost_core import events, outbox
from roost_core.engine import record
from roost_core.engine.control import lock_run
from roost_core.engine.event_waits import with_event
from roost_core.engine.plan import Plan, Statement
from roost_core.engine.state import ACTIVE, Conn
from roost_core.errors import BadRequestError, ConflictError, NotFoundError
from roost_core.queries import SQL
from roost_core.statuses import ApprovalStatus, TaskStatus
from roost_core.topology import Topology
from roost_core.wire import ApprovalAsk

_ADD = SQL.add_approval
_RUN_OF = SQL.approval_run
_FOR_DECISION = SQL.approval_for_decision
_DECIDE = SQL.decide_approval
_TOKEN_NAME = SQL.token_name
_WAKE = SQL.wake_with_event

PENDING, APPROVED, REJECTED = (
    ApprovalStatus.PENDING,
    ApprovalStatus.APPROVED,
    ApprovalStatus.REJECTED,
)
EXPIRED = ApprovalStatus.EXPIRED
CANCELLED = ApprovalStatus.CANCELLED  # shown, never stored: its task ended otherwise


def ask(
    conn: Conn,
    task_run_id: str,
    attempt: int,
    seq: int,
    asked: ApprovalAsk,
    until: float | None,
) -> str | None:
    """Record that ``task_run_id``'s ``attempt`` asks ``asked`` at its durable call
    ``seq`` (until ``until``, unix seconds, or for ever), before it suspends: the
    approval's id, the same one if the question was asked there already; None when the
    attempt is not its task's current active one (a duplicate report)."""
    row = conn.execute(
        _ADD,
        {
            "id": uuid.uuid4(),
            "seq": seq,
            "question": asked.question,
            "details": None if asked.details is None else Jsonb(asked.details),
            "until": until,
            "task_run_id": task_run_id,
            "attempt": attempt,
            "statuses": ACTIVE,
        },
    ).fetchone()
    return None if row is None else str(row[0])


def shown_status(status: str, task_status: str) -> ApprovalStatus:
    """An approval's status as people see it: a pending one whose task has ended
    (cancelled with its run, say) can no longer be decided, and shows CANCELLED."""
    if status == PENDING and TaskStatus(task_status).is_final:
        return CANCELLED
    return ApprovalStatus(status)


def refusal(
    approval_id: str,
    status: str,
    decided_by: str | None,
    decided_at: Any,
    task_status: str,
    expired: bool,
) -> str | None:
    """Why a decision on this approval must be refused (409), or None if it may be
    made: only a pending approval, before its timeout, whose task still waits for it."""
    if status in (APPROVED, REJECTED):
        return (
            f"approval {approval_id} was {status.lower()} already, by {decided_by!r} at "
            f"{_iso(decided_at)}: a decision is final"
        )
    if status == EXPIRED or expired:
        return f"approval {approval_id} expired: its timeout passed with no decision"
    if task_status != TaskStatus.WAITING:
        shown = shown_status(status, task_status)
        if shown == CANCELLED:
            return f"approval {approval_id} can no longer be decided: its task ended {task_status}"
        return f"approval {approval_id} is not awaited now (its task is {task_status}): try again"
    return None


def decision_of(
    approval_id: str, approved: bool, by: str, reason: str | None, at: float
) -> dict[str, Any]:
    """The decision as the task gets it (``roost.Approval``) and the journal records it."""
    return {"id": approval_id, "approved": approved, "by": by, "reason": reason, "at": at}


def decide(
    topology: Topology,
    tenant_id: str,
    token_id: str,
    approval_id: str,
    approved: bool,
    reason: str | None,
) -> Plan[tuple[dict[str, Any], list[outbox.OutboxRow]]]:
    """Approve or reject one of the tenant's approvals, as the token ``token_id``: the
    decision (``decision_of``) and the outbox rows to publish after commit. 404 for an
    unknown approval; 409 (``refusal``) for one that cannot be decided now."""
    try:
        uuid.UUID(approval_id)
    except ValueError:
        raise NotFoundError(f"approval {approval_id!r} not found: not an approval id") from None
    if reason is not None and "\x00" in reason:
        raise BadRequestError("a decision's reason must not contain NUL characters")
    rows = yield Statement(_RUN_OF, {"id": approval_id, "tenant_id": tenant_id})
    if not rows:
        raise NotFoundError(f"approval {approval_id!r} not found")
    run = yield from lock_run(tenant_id, rows[0][0])
    rows = yield Statement(_FOR_DECISION, {"id": approval_id})
    (
        status,
        decided_by,
        decided_at,
        task_status,
        journal,
        task_run_id,
        seq,
        task,
        attempt,
        expired,
    ) = rows[0]
    refused = refusal(approval_id, status, decided_by, decided_at, task_status, expired)
    if refused is not None:
        raise ConflictError(refused)
    names = yield Statement(_TOKEN_NAME, {"token_id": token_id})
    by = names[0][0] if names else token_id
    decided = yield Statement(
        _DECIDE,
        {
            "status": APPROVED if approved else REJECTED,
            "by": by,
            "reason": reason,
            "id": approval_id,
        },
    )
    decision = decision_of(approval_id, approved, by, reason, float(decided[0][0]))
    woken = with_event(list(journal or []), seq, decision)
    yield Statement(_WAKE, {"journal": Jsonb(woken), "task_run_id": task_run_id}, rows=False)
    new = [
        events.NewEvent(
            events.TASK_APPROVAL,
            task,
            attempt - 1,  # the attempt that asked; the next one resumes
            {
                "approval_id": approval_id,
                "status": APPROVED if approved else REJECTED,
                "approved": approved,
                "by": by,
                "reason": reason,
            },
        )
    ]
    written = yield from record.write(topology, run.events(new), [])
    return decision, written.outbox_rows


def _iso(at: Any) -> str:
    return at.isoformat() if hasattr(at, "isoformat") else str(at)
