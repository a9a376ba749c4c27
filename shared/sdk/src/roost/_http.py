"""The SDK's HTTP transport to the api (httpx), with errors mapped to Roost's."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
from pydantic import BaseModel

from roost._errors import ApiUnavailableError, AuthenticationError, error_for
from roost._settings import ClientSettings


class ApiClient:
    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url()
        verify: Any = True
        if settings.tls_root_ca:
            verify = ssl.create_default_context(cafile=settings.tls_root_ca)
        headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            verify=verify,
            timeout=settings.http_timeout_seconds,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        if not self.settings.token:
            raise AuthenticationError(
                "no API token: set ROOST_TOKEN (create one with `roost token create --name NAME`)"
            )
        try:
            resp = self._http.request(
                method,
                path,
                json=json,
                params=params,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.ConnectError as exc:
            text = str(exc)
            if "SSL" in text or "ssl" in text:
                raise ApiUnavailableError(
                    f"TLS handshake with the api at {self.base_url} failed ({text}): if the "
                    "api serves plain HTTP, use an http:// ROOST_API_URL and "
                    "ROOST_TLS_STRATEGY=none; if its certificate is private, set ROOST_TLS_ROOT_CA"
                ) from exc
            raise ApiUnavailableError(
                f"cannot reach the Roost api at {self.base_url}: {text} (is `roost api` running?)"
            ) from exc
        except httpx.RemoteProtocolError as exc:
            raise ApiUnavailableError(
                f"the api at {self.base_url} closed the connection ({exc}): it may have "
                "stopped or restarted (try again); if it always does this, it may serve "
                "HTTPS: then use an https:// ROOST_API_URL and ROOST_TLS_STRATEGY=tls"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ApiUnavailableError(f"the api at {self.base_url} did not answer in time") from exc
        except httpx.TransportError as exc:  # reset, broken pipe, …: the api went away
            raise ApiUnavailableError(
                f"the connection to the api at {self.base_url} failed: {type(exc).__name__} "
                f"{exc} (it may have stopped or restarted; try again)"
            ) from exc
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
        if resp.status_code >= 400:
            raise error_for(resp.status_code, body)
        return body

    def close(self) -> None:
        self._http.close()


def shaped(model: BaseModel, *, exclude_unset: bool = False) -> dict[str, Any]:
    """The JSON body of a request model built with ``model_construct``: the SDK only
    shapes it, the api validates it and its errors name the bad field. Values go as
    given (no serialization warnings; what httpx cannot encode fails as before)."""
    return model.model_dump(exclude_unset=exclude_unset, warnings=False)
