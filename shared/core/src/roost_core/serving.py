"""How the HTTP services (api, gateway, dashboard) serve their app: uvicorn, with its
loggers going through ours and no access log (the services count requests in
Prometheus; a line per request would cost more than the request)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

#: Seconds between the server's housekeeping ticks (its Date header, its exit check).
TICK_SECONDS = 1.0


class _Server(uvicorn.Server):
    """uvicorn's server, ticking once a second rather than ten times: an idle service
    woke ten times a second for housekeeping (issue #17's idle budget). A stop signal
    wakes the tick at once, so shutting down is no slower."""

    _loop: asyncio.AbstractEventLoop | None = None
    _woken: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._woken = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            # on_tick refreshes the Date header when counter % 10 == 0: every tick here.
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), TICK_SECONDS)
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # A signal handler runs between two bytecodes of the main thread: hand the wake
        # to the loop the thread-safe way (it may be blocked waiting for I/O).
        if self._loop is not None and self._woken is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._woken.set)


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
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_level="warning",
        log_config=None,  # uvicorn's loggers go through ours (roost_core.logs)
        access_log=False,
    )
    server = _Server(config)
    server.run()
    if not server.started:  # as uvicorn.run: a port in use, say, fails the process
        sys.exit(3)
