"""Live events from the gateway (Server-Sent Events), sync and async, that survive
disconnects: after a dropped connection the stream reconnects with ``Last-Event-ID`` and
the gateway replays what was missed from its durable log, so the caller sees every
event once, in order."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, NoReturn

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse, connect_sse
from pydantic import BaseModel, ConfigDict

from roost._errors import ApiUnavailableError, error_for
from roost._settings import ClientSettings

RUN_FINAL_TYPES = frozenset({"run.succeeded", "run.failed", "run.cancelled"})

# The TLS context every stream verifies the gateway with (httpx's default: loading its
# CA certificates takes tens of milliseconds, which an asyncio application must not
# spend on its event loop, nor each stream again).
_tls: ssl.SSLContext | None = None
_tls_lock = threading.Lock()


def _tls_context() -> ssl.SSLContext:
    global _tls
    with _tls_lock:
        if _tls is None:
            _tls = httpx.create_ssl_context()
        return _tls


async def _async_tls_context() -> ssl.SSLContext:
    """:func:`_tls_context`, made in a thread the first time: not on the event loop."""
    return _tls if _tls is not None else await asyncio.to_thread(_tls_context)


class RunEvent(BaseModel):
    """One event of a run: ``type`` such as ``task.started`` or ``run.succeeded``,
    ``task`` (None for the run's own events), and its ``data``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: int
    seq: int
    run_id: str
    workflow: str
    type: str
    task: str | None = None
    attempt: int | None = None
    data: Any = None
    at: float

    @property
    def ends_run(self) -> bool:
        return self.type in RUN_FINAL_TYPES


class EventStream:
    """Iterate (``for``) or async-iterate (``async for``) over events. A run's stream
    ends after the run's final event; a workflow's or the tenant's goes on until
    :meth:`close` (or ``break``)."""

    def __init__(
        self,
        settings: ClientSettings,
        path: str,
        *,
        params: dict[str, str] | None = None,
        after: int | None = None,
        ends_with_run: bool = False,
        reconnect_for: float = 60.0,
    ) -> None:
        self._settings = settings
        self._url = settings.gateway_url.rstrip("/") + path
        self._params = params or {}
        self.last_id = after
        self._ends_with_run = ends_with_run
        self._reconnect_for = reconnect_for
        self._closed = False

    def close(self) -> None:
        self._closed = True

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self._settings.token:
            headers["Authorization"] = f"Bearer {self._settings.token}"
        if self.last_id is not None:
            headers["Last-Event-ID"] = str(self.last_id)
        return headers

    def _accept(self, sse: ServerSentEvent) -> RunEvent | None:
        if not sse.data or sse.event == "span":
            # A heartbeat, or a span (sent only to a client that asked for `span`;
            # roost.runs.trace() reads them all).
            return None
        event = RunEvent.model_validate_json(sse.data)
        self.last_id = event.id
        return event

    @staticmethod
    def _raise(response: httpx.Response, body: bytes) -> NoReturn:
        try:
            detail: Any = json.loads(body)
        except ValueError:
            detail = body.decode(errors="replace")
        raise error_for(response.status_code, detail)

    def _give_up(self, since: float, exc: BaseException) -> None:
        if time.monotonic() - since > self._reconnect_for:
            raise ApiUnavailableError(
                f"lost the event gateway at {self._settings.gateway_url} and could not "
                f"reconnect for {self._reconnect_for:.0f} s: {type(exc).__name__} {exc}"
                " (is `roost gateway` running? ROOST_GATEWAY_URL says where)"
            ) from exc

    def __iter__(self) -> Iterator[RunEvent]:
        failing_since: float | None = None
        backoff = 0.2
        timeout = httpx.Timeout(10.0, read=None)
        with httpx.Client(timeout=timeout, verify=_tls_context()) as client:
            while not self._closed:
                try:
                    with connect_sse(
                        client, "GET", self._url, params=self._params, headers=self._headers()
                    ) as source:
                        if source.response.status_code == 204:
                            return  # nothing more: the run ended before our last event
                        if source.response.status_code >= 400:
                            self._raise(source.response, source.response.read())
                        failing_since, backoff = None, 0.2
                        for sse in source.iter_sse():
                            event = self._accept(sse)
                            if event is None:
                                continue
                            yield event
                            if self._closed or (self._ends_with_run and event.ends_run):
                                return
                except httpx.TransportError as exc:
                    failing_since = failing_since or time.monotonic()
                    self._give_up(failing_since, exc)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                # The gateway closed the stream (restarted, or cut off a slow reader):
                # reconnect from the last event id.

    async def __aiter__(self) -> AsyncIterator[RunEvent]:
        failing_since: float | None = None
        backoff = 0.2
        timeout = httpx.Timeout(10.0, read=None)
        tls = await _async_tls_context()
        async with httpx.AsyncClient(timeout=timeout, verify=tls) as client:
            while not self._closed:
                try:
                    async with aconnect_sse(
                        client, "GET", self._url, params=self._params, headers=self._headers()
                    ) as source:
                        if source.response.status_code == 204:
                            return
                        if source.response.status_code >= 400:
                            self._raise(source.response, await source.response.aread())
                        failing_since, backoff = None, 0.2
                        async for sse in source.aiter_sse():
                            event = self._accept(sse)
                            if event is None:
                                continue
                            yield event
                            if self._closed or (self._ends_with_run and event.ends_run):
                                return
                except httpx.TransportError as exc:
                    failing_since = failing_since or time.monotonic()
                    self._give_up(failing_since, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
