"""``roost.workers.get`` (issue #20): one worker process by the id its tasks see
(``ctx.worker_id``, name@host:pid), sent as one path segment, answered as an entry of
``roost.workers.list()``; an id the api never heard of raises NotFoundError, sync and
awaited alike. The api is an in-memory transport answering as ``GET
/api/v1/workers/{worker_id}`` does."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

import roost
from roost import Roost

WORKER = {
    "id": "basic/eu@host-1:42",
    "name": "basic/eu",
    "status": "alive",
    "version": "flows-1",
    "workflows": ["t-chain"],
    "slots": 8,
    "running": 0,
}


def _answer(request: httpx.Request) -> httpx.Response:
    if request.url.raw_path == b"/api/v1/workers/basic%2Feu%40host-1%3A42":
        return httpx.Response(200, json=WORKER)
    message = f"worker {request.url.path.rsplit('/', 1)[-1]!r} not found"
    return httpx.Response(404, json={"error": {"code": "not_found", "message": message}})


@pytest.fixture
def client() -> Roost:
    client = Roost(api_url="http://api.test", token="t", tls_strategy="none")
    api = client.api
    api._sync = httpx.Client(base_url=api.base_url, transport=httpx.MockTransport(_answer))
    return client


def test_get_returns_the_worker_named_by_its_id(client: Roost) -> None:
    assert client.workers.get("basic/eu@host-1:42") == WORKER


def test_get_of_an_unknown_worker_raises_not_found(client: Roost) -> None:
    with pytest.raises(roost.NotFoundError, match="gone@host-1:7"):
        client.workers.get("gone@host-1:7")


def test_aio_get_answers_as_get_does(client: Roost) -> None:
    async def application() -> tuple[dict[str, Any], BaseException]:
        api = client.api
        api._aio = httpx.AsyncClient(base_url=api.base_url, transport=httpx.MockTransport(_answer))
        api._aio_loop = asyncio.get_running_loop()
        try:
            found = await client.workers.aio_get("basic/eu@host-1:42")
            with pytest.raises(roost.NotFoundError) as missing:
                await client.workers.aio_get("gone@host-1:7")
            return found, missing.value
        finally:
            await client.aclose()

    found, missing = asyncio.run(application())
    assert found == WORKER
    assert "gone@host-1:7" in str(missing)
