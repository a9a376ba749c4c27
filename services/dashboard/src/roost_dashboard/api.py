"""The dashboard's only way to Roost's state: the api over HTTP, with the signed-in
user's own token (the dashboard holds no credentials of its own)."""

from __future__ import annotations

from typing import Any

import httpx

from roost_core.errors import AuthenticationError


class ApiError(Exception):
    """The api refused a request (``status``) or could not be reached (``status`` 0); a
    token it refuses (401) raises roost_core's ``AuthenticationError`` instead, which ends
    the session (``roost_dashboard.site.refuse``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Api:
    def __init__(self, base_url: str) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10.0))

    async def close(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        token: str,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        try:
            resp = await self._client.request(
                method,
                path,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            raise ApiError(0, f"the api at {self._client.base_url} is unreachable: {exc}") from exc
        if resp.status_code >= 400:
            try:
                message = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = resp.text[:300] or resp.reason_phrase
            if resp.status_code == 401:
                raise AuthenticationError(message)
            raise ApiError(resp.status_code, message)
        if resp.status_code == 204:
            return None  # a deletion's answer has no body
        return resp.json()
