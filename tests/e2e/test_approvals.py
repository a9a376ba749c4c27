"""Approvals (issue #18, ``ctx.wait_for_approval``) over HTTP: a durable task asks, waits
holding no slot, and resumes with the decision (approved or rejected, by the deciding
token's name, with the reason); a decision is final (a second one gets 409); a timeout
raises WaitTimeoutError in the task and the approval shows EXPIRED."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from harness import Process, Stack


@pytest.fixture(scope="module")
def sleeper(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    """A worker process with one slot serving the durable workflows."""
    proc = stack.start_worker("roost_testapps.flows:sleeper", processes=1, threads=1)
    yield proc
    if proc.popen.poll() is None:
        proc.stop()


def _post(stack: Stack, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(
        f"{stack.api_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=10,
    )


def _pending_of(stack: Stack, run_id: str, timeout: float = 30) -> dict[str, Any]:
    """The run's pending approval, once its task has asked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = stack.api_get("/api/v1/approvals", status="PENDING", run_id=run_id)
        if page["approvals"]:
            [approval] = page["approvals"]
            return dict(approval)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never asked for an approval")


def test_an_approved_question_resumes_the_task_with_the_decision_and_is_final(
    stack: Stack, flows: ModuleType, sleeper: Process, tmp_path: Path
) -> None:
    marker = tmp_path / "marks"
    ref = flows.durable_approval.run(
        {"marker": str(marker), "pr": 12, "timeout": 60}, wait_for_result=False
    )
    approval = _pending_of(stack, ref.id)
    assert approval["question"] == "Merge PR 12?"
    assert approval["details"] == {"pr": 12}
    assert approval["workflow"] == "t-durable-approval" and approval["task"] == "await_merge"
    assert approval["expires_at"] is not None and approval["decided_at"] is None
    [task] = stack.api_get(f"/api/v1/runs/{ref.id}")["tasks"]
    assert task["status"] == "WAITING"
    assert task["waiting"]["reason"] == "approval"
    assert task["waiting"]["approval_id"] == approval["id"]
    # The only slot is free while the task waits for a person.
    assert flows.durable_quick.run({}, wait_for_result=False).result(timeout=20)

    decided = _post(stack, f"/api/v1/approvals/{approval['id']}/approve", {"reason": "CI green"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["approved"] is True

    out = ref.result(timeout=30)["await_merge"]
    assert out["approved"] is True and out["reason"] == "CI green"
    assert out["by"] == "tests"  # the name the stack's token was created with
    assert out["approval_id"] == approval["id"]
    assert marker.read_text().splitlines() == ["step"]  # the step before the wait ran once

    again = _post(stack, f"/api/v1/approvals/{approval['id']}/reject", {"reason": "too late"})
    assert again.status_code == 409, again.text
    assert "approved already" in again.json()["error"]["message"]
    shown = stack.api_get(f"/api/v1/approvals/{approval['id']}")
    assert shown["status"] == "APPROVED" and shown["decided_by"] == "tests"
    [(logged,)] = stack.sql(
        "SELECT data FROM events WHERE run_id = %s AND type = 'task.approval'", ref.id
    )
    assert logged["status"] == "APPROVED" and logged["by"] == "tests"
    assert shown["reason"] == "CI green" and shown["decided_at"] is not None


def test_a_rejection_is_returned_to_the_task_not_raised(
    stack: Stack, flows: ModuleType, sleeper: Process, tmp_path: Path
) -> None:
    ref = flows.durable_approval.run(
        {"marker": str(tmp_path / "marks"), "pr": 13, "timeout": 60}, wait_for_result=False
    )
    approval = _pending_of(stack, ref.id)
    refused = _post(stack, f"/api/v1/approvals/{approval['id']}/reject", {"reason": "not now"})
    assert refused.status_code == 200, refused.text
    out = ref.result(timeout=30)["await_merge"]
    assert out["approved"] is False and out["reason"] == "not now"
    assert stack.api_get(f"/api/v1/approvals/{approval['id']}")["status"] == "REJECTED"


def test_an_unanswered_question_times_out_in_the_task_and_expires(
    stack: Stack, flows: ModuleType, sleeper: Process, tmp_path: Path
) -> None:
    ref = flows.durable_approval.run(
        {"marker": str(tmp_path / "marks"), "pr": 14, "timeout": 2}, wait_for_result=False
    )
    approval = _pending_of(stack, ref.id)
    out = ref.result(timeout=30)["await_merge"]
    assert out["timed_out"] is True
    expired = stack.api_get(f"/api/v1/approvals/{approval['id']}")
    assert expired["status"] == "EXPIRED" and expired["decided_at"] is not None
    # The run's event log says so (as it says who decided, for a decision).
    logged = stack.sql(
        "SELECT data FROM events WHERE run_id = %s AND type = 'task.approval'", ref.id
    )
    assert logged == [({"approval_id": approval["id"], "status": "EXPIRED", "approved": None},)]
    ended = stack.api_get("/api/v1/approvals", decided="true", run_id=ref.id)["approvals"]
    assert [a["id"] for a in ended] == [approval["id"]]
    assert stack.api_get("/api/v1/approvals", status="PENDING", run_id=ref.id)["approvals"] == []
    late = _post(stack, f"/api/v1/approvals/{approval['id']}/approve")
    assert late.status_code == 409 and "expired" in late.json()["error"]["message"]


def test_deciding_an_unknown_or_malformed_approval_is_404(stack: Stack) -> None:
    missing = _post(stack, "/api/v1/approvals/00000000-0000-0000-0000-000000000001/approve")
    assert missing.status_code == 404
    assert "00000000-0000-0000-0000-000000000001" in missing.json()["error"]["message"]
    assert _post(stack, "/api/v1/approvals/nope/approve").status_code == 404
