"""Approvals (issue #18, ``ctx.wait_for_approval``): the listings, and deciding one,
which is the engine core's transition (roost_core.engine.approvals)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from roost_api.statements import SQL
from roost_api.store.common import Conn, iso
from roost_core import outbox
from roost_core.engine.approvals import decide, shown_status
from roost_core.engine.plan import run_async
from roost_core.errors import NotFoundError
from roost_core.statuses import TASK_FINAL, ApprovalStatus
from roost_core.topology import Topology

_APPROVAL = SQL.approval
_BY_ID = SQL.approval_by_id
_FINAL = sorted(TASK_FINAL)


async def list_approvals(
    conn: Conn,
    tenant_id: str,
    status: ApprovalStatus | None,
    run_id: str | None,
    limit: int,
    cursor: tuple[datetime, str] | None,
    decided: bool = False,
) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated on (created_at, id); only those in ``status``, of
    ``run_id``, or that ended (``decided``: approved, rejected, expired or cancelled), if
    given."""
    # Only the filters given go in the WHERE, so that each combination gets its own plan.
    query = _APPROVAL
    if status in (ApprovalStatus.PENDING, ApprovalStatus.CANCELLED):
        # Stored PENDING either way: whether its task still waits tells them apart.
        negate = "NOT " if status == ApprovalStatus.PENDING else ""
        query += f" AND a.status = 'PENDING' AND {negate}(t.status = ANY(%(final)s))"
    elif status is not None:
        query += " AND a.status = %(status)s"
    if decided:  # ended: decided, expired, or pending on a task that ended (CANCELLED)
        query += (
            " AND (a.status IN ('APPROVED', 'REJECTED', 'EXPIRED')"
            " OR (a.status = 'PENDING' AND t.status = ANY(%(final)s)))"
        )
    if run_id:
        query += " AND a.run_id = %(run_id)s"
    if cursor:
        query += " AND (a.created_at, a.id) < (%(after_at)s, %(after_id)s)"
    query += " ORDER BY a.created_at DESC, a.id DESC LIMIT %(limit)s"
    after_at, after_id = cursor or (None, None)
    params = {
        "tenant_id": tenant_id,
        "status": None if status is None else str(status),
        "final": _FINAL,
        "run_id": run_id,
        "after_at": after_at,
        "after_id": after_id,
        "limit": limit,
    }
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [_approval(r) for r in await cur.fetchall()]


async def get_approval(conn: Conn, tenant_id: str, approval_id: str) -> dict[str, Any]:
    """One of the tenant's approvals; NotFoundError if it has none with this id."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_BY_ID, {"tenant_id": tenant_id, "id": approval_id})
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"approval {approval_id!r} not found")
    return _approval(row)


async def decide_approval(
    conn: Conn,
    topology: Topology,
    tenant_id: str,
    token_id: str,
    approval_id: str,
    approved: bool,
    reason: str | None,
) -> tuple[dict[str, Any], list[outbox.OutboxRow]]:
    """Approve or reject, in the caller's transaction: the decision and the outbox rows
    to publish once it commits."""
    async with conn.cursor() as c:
        return await run_async(
            c, decide(topology, tenant_id, token_id, approval_id, approved, reason)
        )


def _approval(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "run_id": str(r["run_id"]),
        "workflow": r["workflow"],
        "task": r["task"],
        "question": r["question"],
        "details": r["details"],
        "status": shown_status(r["status"], r["task_status"]).value,
        "created_at": iso(r["created_at"]),
        "expires_at": iso(r["expires_at"]),
        "decided_at": iso(r["decided_at"]),
        "decided_by": r["decided_by"],
        "reason": r["reason"],
    }
