"""Concurrent single triggers share transactions (group commit, issue #17), and each
request still gets exactly its own answer: its run, with its input and its trace, and
its idempotency key honoured across requests that shared a transaction.

The workflows here are served by no worker, so their runs stay QUEUED."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from scrape import histogram_totals

from harness import Stack

CONCURRENT = 24


def _batches(stack: Stack) -> tuple[float, float]:
    """The api's ``roost_trigger_batch_size`` histogram: (transactions, requests)."""
    return histogram_totals(stack.api_url, "roost_trigger_batch_size")


def _register(stack: Stack, headers: dict[str, str]) -> str:
    name = f"batch-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "tasks": [{"name": "a", "parents": []}, {"name": "b", "parents": ["a"]}]}
    r = httpx.post(f"{stack.api_url}/api/v1/workflows", json=body, headers=headers, timeout=10)
    assert r.status_code == 201, r.text
    return name


async def _trigger_all(
    stack: Stack, name: str, bodies: list[dict[str, Any]], headers: list[dict[str, str]]
) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(f"/api/v1/workflows/{name}/runs", json=body, headers=h)
                for body, h in zip(bodies, headers, strict=True)
            )
        )


def test_concurrent_triggers_share_transactions_and_each_gets_its_own_run(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.token}"}
    name = _register(stack, auth)
    trace_ids = [uuid.uuid4().hex for _ in range(CONCURRENT)]
    headers = [{**auth, "traceparent": f"00-{t}-{'1' * 16}-01"} for t in trace_ids]
    bodies: list[dict[str, Any]] = [{"input": {"i": i}} for i in range(CONCURRENT)]
    transactions_before, requests_before = _batches(stack)

    responses = asyncio.run(_trigger_all(stack, name, bodies, headers))

    assert [r.status_code for r in responses] == [201] * CONCURRENT, [r.text for r in responses]
    created = [r.json() for r in responses]
    assert len({c["id"] for c in created}) == CONCURRENT
    for i, c in enumerate(created):
        # Each answer is its own request's run, as the api has it.
        assert c["input"] == {"i": i} and c["status"] == "QUEUED"
        got = httpx.get(f"{stack.api_url}/api/v1/runs/{c['id']}", headers=auth, timeout=10)
        assert got.status_code == 200 and got.json()["input"] == {"i": i}
        assert [t["name"] for t in got.json()["tasks"]] == ["a", "b"]
    transactions_after, requests_after = _batches(stack)
    assert requests_after - requests_before == CONCURRENT
    # Fewer transactions than requests: some shared one.
    assert transactions_after - transactions_before < CONCURRENT

    # Each run's trace is the one its own request sent, whichever transaction made it.
    for trace_id, c in zip(trace_ids, created, strict=True):
        ctx = httpx.get(f"{stack.api_url}/api/v1/runs/{c['id']}/trace", headers=auth, timeout=10)
        assert ctx.status_code == 200, ctx.text
        assert ctx.json()["trace_id"] == trace_id


def test_one_idempotency_key_sent_concurrently_makes_one_run(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.token}"}
    name = _register(stack, auth)
    key = f"once-{uuid.uuid4().hex[:8]}"
    bodies: list[dict[str, Any]] = [{"input": {"n": 1}, "idempotency_key": key} for _ in range(10)]

    responses = asyncio.run(_trigger_all(stack, name, bodies, [auth] * 10))

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 9 + [201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    listed = httpx.get(
        f"{stack.api_url}/api/v1/runs", params={"workflow": name}, headers=auth, timeout=10
    )
    assert listed.status_code == 200
    assert len(listed.json()["runs"]) == 1
