"""``ctx.wait_for_approval`` on the worker (the replay around it), and the engine's pure
decisions about approvals (roost_core.engine.approvals)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from durable_ctx import NOW, durable_ctx

from roost import Approval, NonDeterminismError, WaitTimeoutError
from roost._durable import WaitRequested
from roost_core.engine.approvals import refusal, shown_status
from roost_core.statuses import ApprovalStatus
from roost_core.wire import ApprovalAsk, DurableCall

_ctx = durable_ctx


def _asked(seq: int, question: str, until: float | None, result: Any = None) -> DurableCall:
    return DurableCall(seq=seq, kind="approval", name=question, until=until, result=result)


def test_a_new_question_suspends_asking_it_with_its_details_and_timeout() -> None:
    ctx = _ctx()
    with pytest.raises(WaitRequested) as waited:
        asyncio.run(ctx.wait_for_approval("Merge PR 7?", details={"pr": 7}, timeout="1h"))
    wait = waited.value
    assert (wait.reason, wait.until) == ("approval", NOW + 3600)
    assert wait.approval == ApprovalAsk(question="Merge PR 7?", details={"pr": 7})
    assert wait.journal == [_asked(0, "Merge PR 7?", NOW + 3600)]
    assert "approval 'Merge PR 7?'" in str(wait)


def test_a_replay_returns_the_recorded_decision_rejections_included() -> None:
    decision = {"id": "a1", "approved": False, "by": "ops", "reason": "no", "at": NOW}
    ctx = _ctx([_asked(0, "Merge PR 7?", NOW + 10, decision)], now=NOW + 5)
    got = asyncio.run(ctx.wait_for_approval("Merge PR 7?", timeout=10))
    assert got == Approval(
        id="a1", approved=False, by="ops", reason="no", at=datetime.fromtimestamp(NOW, UTC)
    )


def test_an_unanswered_question_past_its_timeout_raises_wait_timeout() -> None:
    ctx = _ctx([_asked(0, "Deploy?", NOW + 10)], now=NOW + 11)
    with pytest.raises(WaitTimeoutError, match="wait_for_approval 'Deploy\\?' timed out"):
        asyncio.run(ctx.wait_for_approval("Deploy?", timeout=10))


def test_resumed_before_a_decision_or_its_timeout_the_same_question_waits_on() -> None:
    ctx = _ctx([_asked(0, "Deploy?", NOW + 10)], now=NOW + 1)
    with pytest.raises(WaitRequested) as waited:
        asyncio.run(ctx.wait_for_approval("Deploy?", timeout=10))
    assert waited.value.until == NOW + 10
    assert waited.value.journal == [_asked(0, "Deploy?", NOW + 10)]


def test_a_replay_asking_another_question_fails_naming_both() -> None:
    ctx = _ctx([_asked(0, "Deploy?", None)])
    with pytest.raises(NonDeterminismError, match="wait_for_approval 'Deploy\\?'.*'Merge\\?'"):
        asyncio.run(ctx.wait_for_approval("Merge?"))


@pytest.mark.parametrize("question", ["", "   ", "x" * 1001, "a\x00b"])
def test_a_question_people_cannot_read_is_refused_at_the_call(question: str) -> None:
    with pytest.raises(ValueError, match="wait_for_approval's question"):
        asyncio.run(_ctx().wait_for_approval(question))


def test_details_must_be_json() -> None:
    with pytest.raises(TypeError, match="details"):
        asyncio.run(_ctx().wait_for_approval("Deploy?", details={"when": object()}))


def test_a_decision_is_refused_once_made_once_expired_or_when_the_task_no_longer_waits() -> None:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    assert refusal("a1", "PENDING", None, None, "WAITING", expired=False) is None
    made = refusal("a1", "APPROVED", "ops", at, "SUCCEEDED", expired=False)
    assert made is not None and "approved already, by 'ops'" in made and "final" in made
    assert "expired" in (refusal("a1", "EXPIRED", None, None, "QUEUED", expired=False) or "")
    assert "expired" in (refusal("a1", "PENDING", None, None, "WAITING", expired=True) or "")
    ended = refusal("a1", "PENDING", None, None, "CANCELLED", expired=False)
    assert ended is not None and "ended CANCELLED" in ended
    busy = refusal("a1", "PENDING", None, None, "RUNNING", expired=False)
    assert busy is not None and "try again" in busy


def test_a_pending_approval_whose_task_ended_shows_cancelled() -> None:
    assert shown_status("PENDING", "CANCELLED") == ApprovalStatus.CANCELLED
    assert shown_status("PENDING", "WAITING") == ApprovalStatus.PENDING
    assert shown_status("APPROVED", "SUCCEEDED") == ApprovalStatus.APPROVED
