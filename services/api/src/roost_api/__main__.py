"""``python -m roost_api``: serve the api with uvicorn."""

from __future__ import annotations

import uvicorn

from roost_api.app import create_app
from roost_api.settings import ApiSettings
from roost_core import logs, tracing


def main() -> None:
    logs.configure("api")
    settings = ApiSettings()
    tracing.setup("api", broker_url=settings.broker_url, namespace=settings.namespace)
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SystemExit("ROOST_TLS_CERT and ROOST_TLS_KEY must be set together")
    tracing.instrument_psycopg()
    app = create_app(settings)
    tracing.instrument_starlette(app)
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        log_level="warning",
        log_config=None,  # uvicorn's loggers go through ours (roost_core.logs)
        access_log=False,
    )


if __name__ == "__main__":
    main()
