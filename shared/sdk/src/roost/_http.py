"""The SDK's HTTP transport to the api (httpx), with errors mapped to Roost's: a blocking
client for the plain calls, and an ``httpx.AsyncClient`` for their ``aio_`` twins, made
on first use in the event loop that uses it (and made again for another loop: an
asyncio client belongs to one), closed by ``Roost.aclose()``."""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Any

import httpx
from opentelemetry import trace
from pydantic import BaseModel

from roost._errors import ApiUnavailableError, AuthenticationError, error_for
from roost._settings import ClientSettings
from roost_core import tracing


class ApiClient:
    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url()
        self._headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
        # Both clients are made on first use, sharing one TLS context: loading the CA
        # certificates takes tens of milliseconds, which an asyncio application must not
        # spend on its event loop (the async path loads them in a thread).
        self._tls: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._sync: httpx.Client | None = None
        self._aio: httpx.AsyncClient | None = None
        self._aio_loop: asyncio.AbstractEventLoop | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        self._check_token()
        try:
            resp = self._sync_client().request(
                method,
                path,
                json=json,
                params=params,
                headers=_with_trace(headers),
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from exc
        return _body(resp)

    async def arequest(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """:meth:`request` without blocking the event loop."""
        self._check_token()
        try:
            resp = await (await self._async_client()).request(
                method,
                path,
                json=json,
                params=params,
                headers=_with_trace(headers),
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from exc
        return _body(resp)

    def _tls_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._tls is None:
                root = self.settings.tls_root_ca
                self._tls = (
                    ssl.create_default_context(cafile=root) if root else httpx.create_ssl_context()
                )
            return self._tls

    def _sync_client(self) -> httpx.Client:
        if self._sync is None:
            tls = self._tls_context()
            with self._lock:
                if self._sync is None:
                    self._sync = httpx.Client(
                        base_url=self.base_url,
                        headers=self._headers,
                        verify=tls,
                        timeout=self.settings.http_timeout_seconds,
                    )
        return self._sync

    async def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._aio is None or self._aio_loop is not loop:
            tls = self._tls
            if tls is None:
                tls = await asyncio.to_thread(self._tls_context)
            if self._aio is None or self._aio_loop is not loop:  # none made meanwhile
                # A client made in another loop (ended, or another thread's) cannot
                # serve this one; its connections went with its loop.
                self._aio = httpx.AsyncClient(
                    base_url=self.base_url,
                    headers=self._headers,
                    verify=tls,
                    timeout=self.settings.http_timeout_seconds,
                )
                self._aio_loop = loop
        return self._aio

    def _check_token(self) -> None:
        if not self.settings.token:
            raise AuthenticationError(
                "no API token: set ROOST_TOKEN (create one with `roost token create --name NAME`)"
            )

    def _unavailable(self, exc: httpx.TransportError) -> ApiUnavailableError:
        """What a failed request raises: the api could not be reached or answered not."""
        if isinstance(exc, httpx.ConnectError):
            text = str(exc)
            if "SSL" in text or "ssl" in text:
                return ApiUnavailableError(
                    f"TLS handshake with the api at {self.base_url} failed ({text}): if the "
                    "api serves plain HTTP, use an http:// ROOST_API_URL and "
                    "ROOST_TLS_STRATEGY=none; if its certificate is private, set ROOST_TLS_ROOT_CA"
                )
            return ApiUnavailableError(
                f"cannot reach the Roost api at {self.base_url}: {text} (is `roost api` running?)"
            )
        if isinstance(exc, httpx.RemoteProtocolError):
            return ApiUnavailableError(
                f"the api at {self.base_url} closed the connection ({exc}): it may have "
                "stopped or restarted (try again); if it always does this, it may serve "
                "HTTPS: then use an https:// ROOST_API_URL and ROOST_TLS_STRATEGY=tls"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ApiUnavailableError(f"the api at {self.base_url} did not answer in time")
        # Reset, broken pipe, …: the api went away.
        return ApiUnavailableError(
            f"the connection to the api at {self.base_url} failed: {type(exc).__name__} "
            f"{exc} (it may have stopped or restarted; try again)"
        )

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        """Close the async client, if this event loop made one."""
        if self._aio is not None and self._aio_loop is asyncio.get_running_loop():
            await self._aio.aclose()
        self._aio = self._aio_loop = None


def _with_trace(headers: dict[str, str] | None) -> dict[str, str] | None:
    traced = _trace_headers()
    if headers is None:
        return traced
    return {**headers, **traced} if traced else headers


def _trace_headers() -> dict[str, str] | None:
    """The caller's trace context (``traceparent``) when it is inside a span: a run it
    triggers joins the caller's trace instead of starting one (as raw HTTP with the
    header does). Nothing to send, and nothing to compute, outside any span."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    return tracing.carrier()


def _body(resp: httpx.Response) -> Any:
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    if resp.status_code >= 400:
        raise error_for(resp.status_code, body)
    return body


def shaped(model: BaseModel, *, exclude_unset: bool = False) -> dict[str, Any]:
    """The JSON body of a request model built with ``model_construct``: the SDK only
    shapes it, the api validates it and its errors name the bad field. Values go as
    given (no serialization warnings; what httpx cannot encode fails as before)."""
    return model.model_dump(exclude_unset=exclude_unset, warnings=False)
