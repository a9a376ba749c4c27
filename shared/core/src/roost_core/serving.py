"""How the HTTP services (api, gateway, dashboard) serve their app: uvicorn, with its
loggers going through ours and no access log (the services count requests in
Prometheus; a line per request would cost more than the request)."""

from __future__ import annotations

import uvicorn
from starlette.types import ASGIApp


def serve(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    """Serve ``app`` until SIGTERM or SIGINT; HTTPS when a certificate and key are given
    (both or neither)."""
    if bool(tls_cert) != bool(tls_key):
        raise SystemExit("ROOST_TLS_CERT and ROOST_TLS_KEY must be set together")
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_level="warning",
        log_config=None,  # uvicorn's loggers go through ours (roost_core.logs)
        access_log=False,
    )
