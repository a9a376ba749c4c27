"""``python -m roost_gateway``: serve the gateway with uvicorn."""

from __future__ import annotations

from roost_core import logs, tracing
from roost_core.serving import serve
from roost_gateway.app import create_app
from roost_gateway.settings import GatewaySettings


def main() -> None:
    logs.configure("gateway")
    tracing.setup("gateway")
    settings = GatewaySettings()
    app = create_app(settings)
    tracing.instrument_starlette(app)
    serve(app, host=settings.gateway_host, port=settings.gateway_port)


if __name__ == "__main__":
    main()
