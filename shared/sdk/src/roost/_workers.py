"""Worker processes as the api sees them, from their heartbeats."""

from __future__ import annotations

from typing import Any

from roost._http import ApiClient


class Workers:
    """``roost.workers``: the fleet's worker processes."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def list(self) -> list[dict[str, Any]]:
        """One entry per worker process (``id`` name@host:pid): ``status`` (alive,
        draining, stopped or dead), ``version``, ``sdk_version``, ``workflows``,
        ``slots``, ``running``, ``started_at`` and ``last_heartbeat_at``, as the api
        sends them (an older api may leave some out)."""
        body = self._api.request("GET", "/api/v1/workers")
        return list(body["workers"])
