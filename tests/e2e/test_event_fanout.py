"""Fan-out from the gateway: many subscribers to one workflow's stream each get every
event, and a subscriber that stops reading is cut off without holding up the others."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from harness import Process, Stack, free_port

TERMINAL = {"run.succeeded", "run.failed", "run.cancelled"}


def _log_ids(stack: Stack, run_ids: list[str]) -> dict[str, list[int]]:
    rows = stack.sql(
        "SELECT run_id::text, id FROM events WHERE run_id = ANY(%s::uuid[]) ORDER BY run_id, seq",
        run_ids,
    )
    log: dict[str, list[int]] = {r: [] for r in run_ids}
    for run_id, event_id in rows:
        log[str(run_id)].append(int(event_id))  # type: ignore[call-overload]
    return log


@dataclass
class Subscriber:
    """One client of a workflow stream: what it received, per run, in arrival order."""

    received: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    queued: set[str] = field(default_factory=set)  # runs it saw begin (after it attached)
    ended: set[str] = field(default_factory=set)
    arrived: dict[int, float] = field(default_factory=dict)  # event id -> time.monotonic()
    connections: int = 0
    finished: float = float("inf")  # time.monotonic() when it had everything

    def done(self, runs: int) -> bool:
        return len(self.queued & self.ended) >= runs


async def _follow(
    client: httpx.AsyncClient,
    url: str,
    token: str,
    sub: Subscriber,
    runs: int,
    connected: asyncio.Queue[None],
) -> None:
    """Read ``url`` until ``runs`` runs that began after attaching have ended."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aconnect_sse(client, "GET", url, headers=headers) as source:
        source.response.raise_for_status()
        sub.connections += 1
        connected.put_nowait(None)
        async for sse in source.aiter_sse():
            if not sse.data:
                continue  # a heartbeat comment (httpx-sse reports it with the last id)
            sub.arrived[int(sse.id)] = time.monotonic()
            data = json.loads(sse.data)
            run_id = data["run_id"]
            sub.received[run_id].append(int(sse.id))
            if sse.event == "run.queued":
                sub.queued.add(run_id)
            elif sse.event in TERMINAL:
                sub.ended.add(run_id)
            if sub.done(runs):
                sub.finished = time.monotonic()
                return


async def _wait_connected(connected: asyncio.Queue[None], count: int, tasks: list[Any]) -> None:
    for _ in range(count):
        getter = asyncio.ensure_future(connected.get())
        finished, _ = await asyncio.wait(
            [getter, *tasks], timeout=30, return_when=asyncio.FIRST_COMPLETED
        )
        if getter not in finished:
            getter.cancel()
            for t in finished:
                t.result()  # a subscriber that failed to connect: raise its error
            raise TimeoutError("subscribers did not attach within 30 s")


def _assert_complete(sub: Subscriber, log: dict[str, list[int]]) -> None:
    assert sub.queued == set(log), "a subscriber missed the start of a run"
    for run_id, ids in log.items():
        assert sub.received[run_id] == ids, f"run {run_id}: events missing or out of order"


# -- many subscribers ---------------------------------------------------------------------

SUBSCRIBERS = 200
CHATTY_RUNS = 4


def test_two_hundred_subscribers_to_a_workflow_each_get_every_event_in_order(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    url = f"{stack.gateway_url}/api/v1/workflows/t-chatty/events"

    async def scenario() -> tuple[list[Subscriber], list[str]]:
        subs = [Subscriber() for _ in range(SUBSCRIBERS)]
        connected: asyncio.Queue[None] = asyncio.Queue()
        limits = httpx.Limits(max_connections=SUBSCRIBERS + 10, max_keepalive_connections=0)
        timeout = httpx.Timeout(30, read=60)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            tasks = [
                asyncio.create_task(_follow(client, url, stack.token, s, CHATTY_RUNS, connected))
                for s in subs
            ]
            try:
                # Every subscriber has its response headers: the gateway subscribed it
                # before answering, so each sees the runs from their first event.
                await _wait_connected(connected, SUBSCRIBERS, tasks)
                refs = await asyncio.gather(
                    *(
                        asyncio.to_thread(
                            flows.chatty.run,
                            {"chunks": 10, "pause": 0.05},
                            wait_for_result=False,
                        )
                        for _ in range(CHATTY_RUNS)
                    )
                )
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=45)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return subs, [r.id for r in refs]

    subs, run_ids = asyncio.run(scenario())

    log = _log_ids(stack, run_ids)
    assert all(len(ids) > 10 for ids in log.values())
    for sub in subs:
        _assert_complete(sub, log)
        assert sub.connections == 1


# -- a stalled subscriber -------------------------------------------------------------------

SMALL_BUFFER = 50
SEND_TIMEOUT = 2.0
BULK_RUNS = 4
# ~12 MB in all over about 5 s: the stalled socket's kernel buffers (about 3 MB here) fill
# in the first second or so, and its send timeout expires well before the runs end.
BULK_CHUNKS = 180
BULK_SIZE = 16 * 1024
BULK_PAUSE = 0.025
NORMAL_SUBSCRIBERS = 4


@pytest.fixture(scope="module")
def fan_worker(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    proc = stack.start_worker("roost_testapps.flows:fan_worker", threads=8, name="fan")
    yield proc
    proc.stop()


@pytest.fixture
def small_gateway(stack: Stack) -> Iterator[str]:
    """A second gateway with a 50-event buffer per subscriber, a 2 s send timeout and a
    heartbeat every 0.5 s."""
    port = free_port()
    proc = stack.spawn(
        "gateway-small",
        "gateway",
        extra_env={
            "ROOST_GATEWAY_PORT": str(port),
            "ROOST_SUBSCRIBER_BUFFER": str(SMALL_BUFFER),
            "ROOST_SEND_TIMEOUT_SECONDS": str(SEND_TIMEOUT),
            "ROOST_PING_SECONDS": "0.5",
        },
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.popen.poll() is None, f"gateway-small exited:\n{proc.tail()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"gateway-small not ready:\n{proc.tail()}"
            time.sleep(0.1)
        yield url
    finally:
        proc.stop()
        stack.processes.remove(proc)


def _subscribers(gateway: str) -> int:
    return int(httpx.get(f"{gateway}/ready", timeout=5).json()["subscribers"])


def _stalled_socket(gateway: str, path: str, token: str) -> socket.socket:
    """A client that sends its request and then never reads: a small receive buffer, so
    the gateway's writes back up soon."""
    host, port = gateway.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    return sock


def _drain(sock: socket.socket, timeout: float = 20.0) -> tuple[bytes, str]:
    """Everything the gateway had sent, and how the connection ended: 'eof' or 'reset'
    ('open' if it still was after ``timeout`` s)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    sock.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return b"".join(chunks), "reset"
        if not data:
            return b"".join(chunks), "eof"
        chunks.append(data)
    return b"".join(chunks), "open"


def test_a_stalled_subscriber_is_cut_off_and_the_others_get_everything_on_time(
    stack: Stack, flows: ModuleType, fan_worker: Process, small_gateway: str
) -> None:
    path = "/api/v1/workflows/t-fan-bulk/events"
    stalled = _stalled_socket(small_gateway, path, stack.token)
    try:
        deadline = time.monotonic() + 10
        while _subscribers(small_gateway) < 1:
            assert time.monotonic() < deadline, "the stalled client was never subscribed"
            time.sleep(0.05)

        async def scenario() -> tuple[list[Subscriber], list[str], list[tuple[float, int]]]:
            # The normal subscribers to the small gateway, and a control one to the main
            # gateway: the same events reach both gateways at the same time.
            subs = [Subscriber() for _ in range(NORMAL_SUBSCRIBERS + 1)]
            urls = [small_gateway + path] * NORMAL_SUBSCRIBERS + [stack.gateway_url + path]
            connected: asyncio.Queue[None] = asyncio.Queue()
            counts: list[tuple[float, int]] = []  # (time.monotonic(), /ready subscribers)
            async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=60)) as client:

                async def watch() -> None:
                    while True:
                        resp = await client.get(f"{small_gateway}/ready")
                        counts.append((time.monotonic(), int(resp.json()["subscribers"])))
                        await asyncio.sleep(0.05)

                tasks = [
                    asyncio.create_task(_follow(client, u, stack.token, s, BULK_RUNS, connected))
                    for s, u in zip(subs, urls, strict=True)
                ]
                watcher: asyncio.Task[None] | None = None
                try:
                    await _wait_connected(connected, len(subs), tasks)
                    watcher = asyncio.create_task(watch())
                    refs = await asyncio.gather(
                        *(
                            asyncio.to_thread(
                                flows.fan_bulk.run,
                                {"chunks": BULK_CHUNKS, "size": BULK_SIZE, "pause": BULK_PAUSE},
                                wait_for_result=False,
                            )
                            for _ in range(BULK_RUNS)
                        )
                    )
                    await asyncio.wait_for(asyncio.gather(*tasks), timeout=45)
                    # Every normal subscriber is done; the stalled one must be gone too.
                    for _ in range(100):
                        if counts and counts[-1][1] <= NORMAL_SUBSCRIBERS:
                            break
                        await asyncio.sleep(0.1)
                finally:
                    everything = [*tasks, *([watcher] if watcher else [])]
                    for t in everything:
                        t.cancel()
                    await asyncio.gather(*everything, return_exceptions=True)
            return subs, [r.id for r in refs], counts

        (*subs, control), run_ids, counts = asyncio.run(scenario())
        drained, ending = _drain(stalled)
    finally:
        stalled.close()

    log = _log_ids(stack, run_ids)
    total = sum(len(ids) for ids in log.values())
    assert total > BULK_RUNS * BULK_CHUNKS
    # The normal subscribers: everything, in order, on one connection each, and on time:
    # never held up behind the stalled one (until its send timeout), which would show as
    # events arriving later than at the control subscriber of the other gateway.
    _assert_complete(control, log)
    for sub in subs:
        _assert_complete(sub, log)
        assert sub.connections == 1, "a subscriber that kept up was cut off"
        behind = max(sub.arrived[i] - control.arrived[i] for i in control.arrived)
        assert behind < SEND_TIMEOUT / 2, f"an event reached a subscriber {behind:.2f} s late"
    # The stalled one: the gateway unsubscribed it while the others were still reading...
    assert counts[0][1] == NORMAL_SUBSCRIBERS + 1
    first_done = min(sub.finished for sub in subs)
    seen = [(round(t - counts[0][0], 2), n) for t, n in counts]
    assert any(n == NORMAL_SUBSCRIBERS and t < first_done for t, n in counts), (
        f"not cut off before the others were done at {first_done - counts[0][0]:.2f} s: {seen}"
    )
    assert _subscribers(small_gateway) == 0
    # ...and closed its connection: once what was in flight is read, the socket ends,
    # having carried only part of the stream.
    assert ending in ("eof", "reset"), "the gateway kept the stalled connection open"
    assert drained.startswith(b"HTTP/1.1 200")
    got = [int(i) for i in re.findall(rb"^id: (\d+)\r?$", drained, flags=re.M)]
    every = {i for ids in log.values() for i in ids}
    assert len(set(got)) == len(got) and set(got) <= every and len(got) < total


def test_an_idle_stream_gets_heartbeat_comments_that_keep_proxies_from_closing_it(
    stack: Stack, flows: ModuleType, small_gateway: str
) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    received = b""
    url = f"{small_gateway}/api/v1/workflows/t-chatty/events"
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=5)) as client,
        client.stream("GET", url, headers=headers) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-accel-buffering"] == "no"
        started = time.monotonic()
        for chunk in resp.iter_raw():
            received += chunk
            if received.count(b": ping") >= 2 or time.monotonic() - started > 5:
                break
    # Comments (lines starting with ':') that EventSource ignores, about every 0.5 s.
    assert received.count(b": ping") >= 2, received
    assert b"event:" not in received  # nothing happened: only heartbeats
