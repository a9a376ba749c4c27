"""``roost.approvals`` and ``roost approvals`` (issue #18, ``ctx.wait_for_approval``):
the requests the client sends and how it reads pages, and what the CLI prints, against
a fake api. A refusal (409) or an unknown id (404) is the api's error, named."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from roost import ApprovalInfo, BadRequestError, ConflictError, Decision, NotFoundError, Roost
from roost._errors import error_for
from roost.cli import app, console

A1 = "3f2a1b2c-1234-4321-abcd-0123456789ab"
A2 = "9e8d7c6b-5a49-4321-abcd-ba9876543210"
RUN = "0f0e0d0c-0b0a-4998-8776-655443322110"
DECIDED_AT = 1796623803.0  # 2026-12-07 06:10:03 UTC


def _approval(approval_id: str = A1, **changes: Any) -> dict[str, Any]:
    return {
        "id": approval_id,
        "run_id": RUN,
        "workflow": "deploys",
        "task": "gate",
        "question": "Merge PR 7?",
        "details": {"pr": 7},
        "status": "PENDING",
        "created_at": "2026-12-07T06:00:00+00:00",
        "expires_at": "2026-12-07T07:00:00+00:00",
        "decided_at": None,
        "decided_by": None,
        "reason": None,
        **changes,
    }


class FakeApi:
    """Answers each (method, path) from ``answers``: a body, a list of bodies (one per
    request, in turn), or an exception to raise."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str, Any, Any]] = []

    def request(
        self, method: str, path: str, *, json: Any = None, params: Any = None, **_: Any
    ) -> Any:
        self.sent.append((method, path, json, params))
        answer = self.answers[(method, path)]
        if isinstance(answer, list):
            answer = answer.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def arequest(
        self, method: str, path: str, *, json: Any = None, params: Any = None, **_: Any
    ) -> Any:
        return self.request(method, path, json=json, params=params)


def _roost(api: FakeApi) -> Roost:
    client = Roost(token="t")
    client._api = api  # type: ignore[assignment]
    return client


def _decision(approved: bool, reason: str | None) -> dict[str, Any]:
    return {"id": A1, "approved": approved, "by": "alice", "reason": reason, "at": DECIDED_AT}


def test_the_client_reads_pages_up_to_its_limit_and_decides_with_a_reason() -> None:
    pages = [
        {"approvals": [_approval(A1)], "next_cursor": "c2"},
        {"approvals": [_approval(A2, status="APPROVED")], "next_cursor": "c3"},
    ]
    path = f"/api/v1/approvals/{A1}"
    answers: dict[tuple[str, str], Any] = {
        ("GET", "/api/v1/approvals"): pages,
        ("GET", path): _approval(),
        ("POST", f"{path}/approve"): _decision(True, "CI green"),
        ("POST", f"{path}/reject"): _decision(False, None),
    }
    api = FakeApi(answers)
    client = _roost(api)

    found = client.approvals.list(status="PENDING", run_id=RUN, limit=2)
    assert [a.id for a in found] == [A1, A2] and isinstance(found[0], ApprovalInfo)
    # The second page asks only for what is still wanted; its cursor is not followed.
    assert [params for _, _, _, params in api.sent] == [
        {"status": "PENDING", "run_id": RUN, "limit": 2},
        {"status": "PENDING", "run_id": RUN, "limit": 1, "cursor": "c2"},
    ]
    assert client.approvals.get(A1).details == {"pr": 7}
    approved = client.approvals.approve(A1, reason="CI green")
    assert isinstance(approved, Decision) and approved.approved and approved.by == "alice"
    assert not client.approvals.reject(A1).approved
    assert [(m, p, body) for m, p, body, _ in api.sent[3:]] == [
        ("POST", f"{path}/approve", {"reason": "CI green"}),
        ("POST", f"{path}/reject", {"reason": None}),
    ]
    # The api would read a page size below 1 as 1: refused before anything is sent.
    for bad in (0, -1, True):
        with pytest.raises(BadRequestError, match="limit must"):
            client.approvals.list(limit=bad)
    assert len(api.sent) == 5


def test_every_page_is_read_without_a_limit_and_the_aio_twins_send_the_same() -> None:
    def answers() -> dict[tuple[str, str], Any]:
        return {
            ("GET", "/api/v1/approvals"): [
                {"approvals": [_approval(A1)], "next_cursor": "c2"},
                {"approvals": [_approval(A2)], "next_cursor": None},
            ],
            ("GET", f"/api/v1/approvals/{A1}"): _approval(),
            ("POST", f"/api/v1/approvals/{A1}/approve"): _decision(True, None),
            ("POST", f"/api/v1/approvals/{A1}/reject"): _decision(False, "no"),
        }

    plain, awaited = FakeApi(answers()), FakeApi(answers())
    sync, aio = _roost(plain), _roost(awaited)
    read = [
        sync.approvals.list(limit=None),
        sync.approvals.get(A1),
        sync.approvals.approve(A1),
        sync.approvals.reject(A1, "no"),
    ]

    async def application() -> list[Any]:
        return [
            await aio.approvals.aio_list(limit=None),
            await aio.approvals.aio_get(A1),
            await aio.approvals.aio_approve(A1),
            await aio.approvals.aio_reject(A1, "no"),
        ]

    assert asyncio.run(application()) == read
    assert awaited.sent == plain.sent
    assert [a.id for a in read[0]] == [A1, A2]
    assert plain.sent[1][3] == {"limit": 500, "cursor": "c2"}


def test_the_apis_refusals_are_the_sdks_errors() -> None:
    refused = {"error": {"code": "conflict", "message": f"approval {A1} was approved already"}}
    assert isinstance(error_for(409, refused), ConflictError)
    missing = {"error": {"code": "not_found", "message": f"approval {A1!r} not found"}}
    assert isinstance(error_for(404, missing), NotFoundError)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``roost ARGS`` in this process against a fake api: (exit code, stdout, stderr)."""
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(api: FakeApi, *args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(console, "Roost", lambda: _roost(api))
        done = CliRunner().invoke(app, list(args))
        return done.exit_code, done.stdout, done.stderr

    return invoke


def test_list_shows_the_pending_ones_by_default_in_a_table(cli: Any) -> None:
    page = {"approvals": [_approval(question="Deploy [prod]\n  now?")], "next_cursor": None}
    api = FakeApi({("GET", "/api/v1/approvals"): [page, page, page]})

    code, out, _ = cli(api, "approvals", "list")
    assert code == 0, out
    assert api.sent[0][3] == {"status": "PENDING", "limit": 50}
    [row] = [line for line in out.splitlines() if A1 in line]
    assert "PENDING" in row and "deploys / gate" in row
    assert "Deploy [prod] now?" in row  # one line; brackets shown, not read as markup
    assert "2026-12-07 06:00:00 UTC" in row and "expires 2026-12-07 07:00:00 UTC" in out
    assert "decided by" not in out  # none of them is decided

    code, out, _ = cli(api, "approvals", "list", "--status", "all", "--run", RUN, "--json")
    assert code == 0 and api.sent[1][3] == {"run_id": RUN, "limit": 50}
    assert [a["id"] for a in json.loads(out)] == [A1]


def test_list_shows_who_decided_and_says_when_there_is_none(cli: Any) -> None:
    decided = _approval(status="APPROVED", decided_by="alice", decided_at="2026-12-07T06:10:03Z")
    pages = [
        {"approvals": [decided], "next_cursor": None},
        {"approvals": [], "next_cursor": None},
    ]
    api = FakeApi({("GET", "/api/v1/approvals"): pages})
    code, out, _ = cli(api, "approvals", "list", "--status", "approved")
    assert code == 0 and "decided by" in out
    [row] = [line for line in out.splitlines() if A1 in line]
    assert "APPROVED" in row and "alice" in row
    code, out, _ = cli(api, "approvals", "list")
    assert code == 0 and out.strip() == "no PENDING approvals"


def test_show_prints_the_question_details_and_decision(cli: Any) -> None:
    path = f"/api/v1/approvals/{A1}"
    decided = _approval(
        status="REJECTED", decided_by="alice", decided_at="2026-12-07T06:10:03Z", reason="no"
    )
    api = FakeApi({("GET", path): [_approval(), decided]})
    code, out, _ = cli(api, "approvals", "show", A1)
    assert code == 0
    assert out.splitlines() == [
        f"approval {A1}: PENDING",
        "  question: Merge PR 7?",
        '  details: {"pr": 7}',
        f"  run: {RUN} (deploys / gate)",
        "  created: 2026-12-07 06:00:00 UTC",
        "  expires: 2026-12-07 07:00:00 UTC",
        f"  decide: roost approvals approve|reject {A1} [--reason TEXT]",
    ]
    code, out, _ = cli(api, "approvals", "show", A1)
    assert code == 0
    assert "  decided: 2026-12-07 06:10:03 UTC by alice" in out.splitlines()
    assert "  reason: no" in out.splitlines() and "decide:" not in out


def test_approve_and_reject_print_the_decision(cli: Any) -> None:
    path = f"/api/v1/approvals/{A1}"
    api = FakeApi(
        {
            ("POST", f"{path}/approve"): _decision(True, "CI green"),
            ("POST", f"{path}/reject"): _decision(False, None),
        }
    )
    code, out, _ = cli(api, "approvals", "approve", A1, "--reason", "CI green")
    assert code == 0
    assert out.strip() == f"approval {A1} approved by alice at 2026-12-07 06:10:03 UTC: CI green"
    assert api.sent[0][2] == {"reason": "CI green"}
    code, out, _ = cli(api, "approvals", "reject", A1)
    assert code == 0
    assert out.strip() == f"approval {A1} rejected by alice at 2026-12-07 06:10:03 UTC"
    assert api.sent[1][:3] == ("POST", f"{path}/reject", {"reason": None})


def test_a_refused_or_unknown_decision_fails_with_the_apis_reason(cli: Any) -> None:
    path = f"/api/v1/approvals/{A1}"
    refusal = f"approval {A1} was approved already, by 'alice' at 2026-12-07T06:10:03+00:00"
    api = FakeApi(
        {
            ("POST", f"{path}/reject"): ConflictError(refusal),
            ("POST", f"{path}/approve"): NotFoundError(f"approval {A1!r} not found"),
            ("GET", path): NotFoundError(f"approval {A1!r} not found"),
        }
    )
    code, out, err = cli(api, "approvals", "reject", A1, "--reason", "too late")
    assert code == 1 and out == ""
    assert "error:" in err and "approved already" in " ".join(err.split())
    code, _, err = cli(api, "approvals", "approve", A1)
    assert code == 1 and "not found" in err
    code, _, err = cli(api, "approvals", "show", A1)
    assert code == 1 and "not found" in err
    code, _, err = cli(api, "approvals", "list", "--limit", "0")
    assert code == 1 and "limit must be" in err
