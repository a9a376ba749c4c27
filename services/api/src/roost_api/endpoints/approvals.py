"""Approvals (issue #18): the questions durable tasks ask people
(``ctx.wait_for_approval``), listed, and decided once, finally."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from roost_api import store
from roost_api.http import decode_cursor, encode_cursor, parsed_body, query_of
from roost_api.openapi import operation
from roost_api.params import ApprovalQuery
from roost_api.resources import resources
from roost_core.approval_models import ApprovalInfo, ApprovalPage, Decision, DecisionRequest
from roost_core.authentication import principal_of, tenant_of
from roost_core.engine.control import check_run_id
from roost_core.errors import NotFoundError


@operation(
    "Questions durable tasks asked people, newest first (paginated)",
    tag="approvals",
    description=(
        "status PENDING lists those awaiting a decision; a pending approval whose task "
        "ended otherwise (its run was cancelled) shows CANCELLED."
    ),
    query=ApprovalQuery,
    ok={200: ("a page of approvals", ApprovalPage)},
)
async def list_approvals(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    q = query_of(request, ApprovalQuery)
    cursor = decode_cursor(q.cursor) if q.cursor else None
    run_id = None if q.run_id is None else str(q.run_id)
    async with r.pool.connection() as conn:
        found = await store.list_approvals(
            conn, tenant, q.status, run_id, q.limit, cursor, decided=q.decided
        )
    next_cursor = (
        encode_cursor(found[-1]["created_at"], found[-1]["id"]) if len(found) == q.limit else None
    )
    return JSONResponse({"approvals": found, "next_cursor": next_cursor})


@operation(
    "One approval, with its decision once made",
    tag="approvals",
    ok={200: ("the approval", ApprovalInfo)},
    errors={404: "unknown approval"},
)
async def get_approval(request: Request) -> Response:
    tenant = tenant_of(request)
    r = resources(request)
    approval_id = _approval_id(request)
    async with r.pool.connection() as conn:
        return JSONResponse(await store.get_approval(conn, tenant, approval_id))


_DECISION_ERRORS = {
    404: "unknown approval",
    409: "decided already, expired, or its task no longer waits for it",
}
_FINAL = "The decision records the API token's name and the time, and is final. "


@operation(
    "Approve what a waiting durable task asked; the task resumes with the decision",
    tag="approvals",
    body=DecisionRequest,
    body_required=False,
    description=_FINAL + "The task's ctx.wait_for_approval returns approved true.",
    ok={200: ("the decision, as the task gets it", Decision)},
    errors=_DECISION_ERRORS,
)
async def approve(request: Request) -> Response:
    return await _decide(request, approved=True)


@operation(
    "Reject what a waiting durable task asked; the task resumes with the decision",
    tag="approvals",
    body=DecisionRequest,
    body_required=False,
    description=_FINAL + "The task's ctx.wait_for_approval returns approved false.",
    ok={200: ("the decision, as the task gets it", Decision)},
    errors=_DECISION_ERRORS,
)
async def reject(request: Request) -> Response:
    return await _decide(request, approved=False)


async def _decide(request: Request, *, approved: bool) -> Response:
    principal = principal_of(request)
    r = resources(request)
    approval_id = _approval_id(request)
    body = await parsed_body(request, DecisionRequest, "invalid decision")
    async with r.pool.connection() as conn:
        async with conn.transaction():
            decision, rows = await store.decide_approval(
                conn,
                r.topology,
                principal.tenant_id,
                principal.token_id,
                approval_id,
                approved,
                body.reason,
            )
        r.relay.submit(rows)
    # The journal keeps unix seconds; HTTP shows times as ISO 8601, as everywhere else.
    at = datetime.fromtimestamp(decision["at"], UTC).isoformat()
    return JSONResponse({**decision, "at": at})


def _approval_id(request: Request) -> str:
    approval_id: str = request.path_params["approval_id"]
    try:
        check_run_id(approval_id)  # the same check: an id is a UUID
    except NotFoundError:
        raise NotFoundError(f"approval {approval_id!r} not found: not an approval id") from None
    return approval_id


ROUTES: list[BaseRoute] = [
    Route("/api/v1/approvals", list_approvals, methods=["GET"]),
    Route("/api/v1/approvals/{approval_id}", get_approval, methods=["GET"]),
    Route("/api/v1/approvals/{approval_id}/approve", approve, methods=["POST"]),
    Route("/api/v1/approvals/{approval_id}/reject", reject, methods=["POST"]),
]
