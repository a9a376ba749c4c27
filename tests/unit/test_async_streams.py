"""``async for event in ref.aio_stream()`` (issue #20) in an asyncio application: opening
the stream sets up TLS (tens of milliseconds of loading CA certificates) off the event
loop, so asyncio's debug mode reports no slow callback. The gateway here is a port
nobody listens on: the stream keeps reconnecting until it is cancelled."""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from typing import Any

import pytest

import roost._stream
from roost import Roost, RunRef

SLOW = 0.2  # what loading CA certificates costs here, made large enough to see


async def _read_for(ref: RunRef, seconds: float) -> None:
    async def read() -> None:
        async for _ in ref.aio_stream(types=["task.*"]):
            pass

    with pytest.raises(TimeoutError):  # reconnecting, as it should
        await asyncio.wait_for(read(), timeout=seconds)


def test_opening_an_async_stream_never_blocks_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = Roost(api_url="http://127.0.0.1:1", gateway_url="http://127.0.0.1:1", token="t")
    ref = RunRef(client.runs, "r1", "wf")
    # A first stream imports httpx's connection modules, once per process (as any first
    # request does): not what is measured here.
    asyncio.run(_read_for(ref, 0.1))
    made_in: list[threading.Thread] = []
    real = ssl.create_default_context

    def slow_tls(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made_in.append(threading.current_thread())
        time.sleep(SLOW)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", slow_tls)
    monkeypatch.setattr(roost._stream, "_tls", None)  # as in a fresh process
    loop_thread: list[threading.Thread] = []

    async def application() -> None:
        asyncio.get_running_loop().slow_callback_duration = SLOW / 2
        loop_thread.append(threading.current_thread())
        await _read_for(ref, SLOW * 3)

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        asyncio.run(application(), debug=True)
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert not slow, slow
    assert made_in and loop_thread[0] not in made_in
