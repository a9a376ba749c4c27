"""``python -m roost_api``: serve the api with uvicorn."""

from __future__ import annotations

from roost_api.app import create_app
from roost_api.settings import ApiSettings
from roost_core import logs, tracing
from roost_core.serving import serve


def main() -> None:
    logs.configure("api")
    settings = ApiSettings()
    tracing.setup("api", broker_url=settings.broker_url, namespace=settings.namespace)
    tracing.instrument_psycopg()
    app = create_app(settings)
    tracing.instrument_starlette(app)
    serve(
        app,
        host=settings.api_host,
        port=settings.api_port,
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
    )


if __name__ == "__main__":
    main()
