"""Worker processes as the api sees them, from their heartbeats."""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from roost._http import ApiClient


class Workers:
    """``roost.workers``: the fleet's worker processes (each call has an ``aio_`` twin
    for asyncio code)."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def list(self) -> builtins.list[dict[str, Any]]:
        """One entry per worker process (``id`` name@host:pid): ``status`` (alive,
        draining, stopped or dead), ``version``, ``sdk_version``, ``labels`` (a dict,
        as its latest heartbeat carried them), ``workflows``, ``slots``, ``running``,
        ``started_at`` and ``last_heartbeat_at``, as the api sends them (an older api
        may leave some out)."""
        body = self._api.request("GET", "/api/v1/workers")
        return builtins.list(body["workers"])

    async def aio_list(self) -> builtins.list[dict[str, Any]]:
        """:meth:`list`, awaited."""
        body = await self._api.arequest("GET", "/api/v1/workers")
        return builtins.list(body["workers"])

    def get(self, worker_id: str) -> dict[str, Any]:
        """One worker process by its id (as ``ctx.worker_id`` and :meth:`list` give
        it), shaped as an entry of :meth:`list`; NotFoundError if the api has never
        heard of it."""
        body: dict[str, Any] = self._api.request("GET", _path(worker_id))
        return body

    async def aio_get(self, worker_id: str) -> dict[str, Any]:
        """:meth:`get`, awaited."""
        body: dict[str, Any] = await self._api.arequest("GET", _path(worker_id))
        return body


def _path(worker_id: str) -> str:
    # An id is name@host:pid, whose name is the application's: quoted whole (its "@",
    # ":" and anything else a name may hold), it stays one path segment.
    return f"/api/v1/workers/{quote(worker_id, safe='')}"
