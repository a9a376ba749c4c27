"""Approvals (issue #18): ``roost.approvals`` lists the questions durable tasks asked
people (``ctx.wait_for_approval``) and decides them. Each call has an ``aio_`` twin
sharing its body and parsing.

```python
for a in roost.approvals.list(status="PENDING"):  # those awaiting a decision
    print(a.id, a.workflow, a.task, a.question)
roost.approvals.approve(a.id, reason="CI green")  # the task resumes, approved
```

A decision is final and records the API token's name: deciding again, after the
timeout, or once the task no longer waits raises ConflictError (its message says why);
an unknown id raises NotFoundError.
"""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from roost._errors import BadRequestError
from roost._http import ApiClient, shaped
from roost._targets import PAGE
from roost_core.approval_models import ApprovalInfo, Decision, DecisionRequest
from roost_core.statuses import ApprovalStatus


class Approvals:
    """``roost.approvals``: questions durable tasks asked people: list, read, approve,
    reject (each call has an ``aio_`` twin for asyncio code)."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def list(
        self,
        status: ApprovalStatus | str | None = None,
        run_id: str | None = None,
        limit: int | None = 50,
    ) -> builtins.list[ApprovalInfo]:
        """The newest ``limit`` approvals (None: every one), newest first, reading as
        many pages as that takes: only those in ``status`` (PENDING: awaiting a decision;
        APPROVED, REJECTED, EXPIRED, CANCELLED) or of the run ``run_id`` if given."""
        found: builtins.list[ApprovalInfo] = []
        cursor: str | None = None
        while True:
            params = _page_params(status, run_id, limit, len(found), cursor)
            body = self._api.request("GET", "/api/v1/approvals", params=params)
            if (cursor := _extend(found, body, limit)) is None:
                return found

    async def aio_list(
        self,
        status: ApprovalStatus | str | None = None,
        run_id: str | None = None,
        limit: int | None = 50,
    ) -> builtins.list[ApprovalInfo]:
        """:meth:`list`, awaited."""
        found: builtins.list[ApprovalInfo] = []
        cursor: str | None = None
        while True:
            params = _page_params(status, run_id, limit, len(found), cursor)
            body = await self._api.arequest("GET", "/api/v1/approvals", params=params)
            if (cursor := _extend(found, body, limit)) is None:
                return found

    def get(self, approval_id: str) -> ApprovalInfo:
        """One approval, with its decision once made; NotFoundError if there is none."""
        return ApprovalInfo.model_validate(self._api.request("GET", _path(approval_id)))

    async def aio_get(self, approval_id: str) -> ApprovalInfo:
        """:meth:`get`, awaited."""
        return ApprovalInfo.model_validate(await self._api.arequest("GET", _path(approval_id)))

    def approve(self, approval_id: str, reason: str | None = None) -> Decision:
        """Approve: the waiting task resumes, its ``ctx.wait_for_approval`` returning
        approved True, by this client's token name, with ``reason``. ConflictError if it
        was decided already, expired, or its task no longer waits for it."""
        return self._decide(approval_id, "approve", reason)

    async def aio_approve(self, approval_id: str, reason: str | None = None) -> Decision:
        """:meth:`approve`, awaited."""
        return await self._aio_decide(approval_id, "approve", reason)

    def reject(self, approval_id: str, reason: str | None = None) -> Decision:
        """Reject: the waiting task resumes with approved False (returned, not raised).
        ConflictError as for :meth:`approve`."""
        return self._decide(approval_id, "reject", reason)

    async def aio_reject(self, approval_id: str, reason: str | None = None) -> Decision:
        """:meth:`reject`, awaited."""
        return await self._aio_decide(approval_id, "reject", reason)

    def _decide(self, approval_id: str, verb: str, reason: str | None) -> Decision:
        path = f"{_path(approval_id)}/{verb}"
        return Decision.model_validate(self._api.request("POST", path, json=_decision(reason)))

    async def _aio_decide(self, approval_id: str, verb: str, reason: str | None) -> Decision:
        path = f"{_path(approval_id)}/{verb}"
        body = await self._api.arequest("POST", path, json=_decision(reason))
        return Decision.model_validate(body)


def _page_params(
    status: ApprovalStatus | str | None,
    run_id: str | None,
    limit: int | None,
    have: int,
    cursor: str | None,
) -> dict[str, Any]:
    """One page's query: as many as are still wanted, at most the api's largest page."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        # The api reads a page size below 1 as 1: refused here instead of answered wrong.
        raise BadRequestError(
            f"limit must be a whole number of at least 1 (None: every one), not {limit!r}"
        )
    values = {
        "status": None if status is None else str(status),
        "run_id": None if run_id is None else str(run_id),
        "cursor": cursor,
        "limit": PAGE if limit is None else min(limit - have, PAGE),
    }
    return {k: v for k, v in values.items() if v is not None}


def _extend(
    found: builtins.list[ApprovalInfo], body: dict[str, Any], limit: int | None
) -> str | None:
    """Add a page's approvals to ``found``; the cursor of the next page to read, or None
    once there is none or ``limit`` are found."""
    found.extend(ApprovalInfo.model_validate(a) for a in body["approvals"])
    cursor: str | None = body["next_cursor"]
    if limit is not None and len(found) >= limit:
        return None
    return cursor


def _decision(reason: str | None) -> dict[str, Any]:
    return shaped(DecisionRequest.model_construct(reason=reason))


def _path(approval_id: str) -> str:
    return f"/api/v1/approvals/{quote(str(approval_id), safe='')}"
