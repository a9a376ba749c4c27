"""``roost approvals`` and ``roost.approvals`` (issue #18) against the real services: a
durable task asks (``flows.durable_approval``), the CLI lists its question and approves
it, and the task resumes with the decision, by the stack token's name; a second
decision fails naming the first. The SDK client lists, reads and rejects, awaited too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from harness import Process, Stack
from roost import ApprovalInfo, ConflictError, NotFoundError, Roost

UNKNOWN = "00000000-0000-0000-0000-000000000001"


@pytest.fixture(scope="module")
def sleeper(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    """A worker process with one slot serving the durable workflows."""
    proc = stack.start_worker("roost_testapps.flows:sleeper", processes=1, threads=1)
    yield proc
    if proc.popen.poll() is None:
        proc.stop()


@pytest.fixture
def wide(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI prints at 200 columns, so that a table's cells are whole (Rich folds at
    80 when its output is not a terminal)."""
    monkeypatch.setitem(stack.env, "COLUMNS", "200")


def _pending(client: Roost, run_id: str, timeout: float = 20) -> ApprovalInfo:
    """The run's pending approval, once its task has asked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.approvals.list(status="PENDING", run_id=run_id)
        if found:
            [approval] = found
            return approval
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never asked for an approval")


def test_the_cli_lists_the_question_approves_it_and_refuses_a_second_decision(
    stack: Stack, flows: ModuleType, sleeper: Process, wide: None, tmp_path: Path
) -> None:
    ref = flows.durable_approval.run(
        {"marker": str(tmp_path / "marks"), "pr": 21, "timeout": 60}, wait_for_result=False
    )
    approval_id = _pending(flows.roost, ref.id).id

    listed = stack.roost("approvals", "list")
    [row] = [line for line in listed.splitlines() if approval_id in line]
    assert "PENDING" in row and "Merge PR 21?" in row
    assert "t-durable-approval / await_merge" in row
    shown = stack.roost("runs", "show", ref.id)
    assert f"approval 'Merge PR 21?' (id {approval_id}) until" in shown

    said = stack.roost("approvals", "approve", approval_id, "--reason", "CI green")
    assert said.startswith(f"approval {approval_id} approved by tests at ")
    assert said.strip().endswith(": CI green")
    out = ref.result(timeout=20)["await_merge"]
    assert out["approved"] is True and out["by"] == "tests" and out["reason"] == "CI green"
    assert out["approval_id"] == approval_id

    with pytest.raises(RuntimeError, match=r"failed \(1\)") as refused:
        stack.roost("approvals", "reject", approval_id, "--reason", "too late")
    assert "approved already" in " ".join(str(refused.value).split())
    shown = stack.roost("approvals", "show", approval_id)
    assert f"approval {approval_id}: APPROVED" in shown
    assert "by tests" in shown and "reason: CI green" in shown


def test_the_sdk_client_lists_gets_and_rejects_and_its_aio_twins_agree(
    stack: Stack, flows: ModuleType, sleeper: Process, tmp_path: Path
) -> None:
    ref = flows.durable_approval.run(
        {"marker": str(tmp_path / "marks"), "pr": 22, "timeout": 60}, wait_for_result=False
    )
    client: Roost = flows.roost
    pending = _pending(client, ref.id)
    got = client.approvals.get(pending.id)
    assert got == pending
    assert (got.question, got.details, got.status) == ("Merge PR 22?", {"pr": 22}, "PENDING")
    assert got.expires_at is not None and got.decided_by is None

    async def application() -> tuple[ApprovalInfo, list[ApprovalInfo]]:
        other = Roost()  # the same stack, from the environment the flows fixture set
        try:
            read = await other.approvals.aio_get(pending.id)
            listed = await other.approvals.aio_list(status="PENDING", run_id=ref.id)
            return read, listed
        finally:
            await other.aclose()

    assert asyncio.run(application()) == (got, [got])

    decision = client.approvals.reject(pending.id, reason="not now")
    assert (decision.id, decision.approved, decision.by) == (pending.id, False, "tests")
    out = ref.result(timeout=20)["await_merge"]
    assert out["approved"] is False and out["reason"] == "not now"
    with pytest.raises(ConflictError, match="rejected already"):
        client.approvals.approve(pending.id)
    decided = client.approvals.get(pending.id)
    assert decided.status == "REJECTED" and decided.decided_by == "tests"
    assert [a.id for a in client.approvals.list(status="REJECTED", run_id=ref.id)] == [pending.id]


def test_an_unknown_approval_is_not_found_in_the_cli_and_the_sdk(
    stack: Stack, flows: ModuleType
) -> None:
    with pytest.raises(RuntimeError, match="not found"):
        stack.roost("approvals", "approve", UNKNOWN)
    with pytest.raises(RuntimeError, match="not found"):
        stack.roost("approvals", "show", "nope")
    with pytest.raises(NotFoundError, match=UNKNOWN):
        flows.roost.approvals.get(UNKNOWN)
