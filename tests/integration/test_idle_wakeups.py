"""An idle service sleeps: nothing in it wakes up to find nothing to do (issue #17's idle
budget: all services together at most 2% of one core with no work).

Counted as the kernel counts them: a thread's voluntary context switches
(/proc/<pid>/task/<tid>/status) are the times it went to sleep, so an idle thread that
polls on a timer shows one per poll; a thread that waits for work shows none.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
import pika

from harness import Process, Stack, free_port
from roost_core.spans import SpanShipper, decode
from roost_core.topology import Topology

#: Seconds each idle thread is watched for.
WATCH = 3.0


def _sleeps(pid: int, tid: int) -> int:
    status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
    line = next(ln for ln in status.splitlines() if ln.startswith("voluntary_ctxt_switches"))
    return int(line.split()[1])


def _ready(url: str, proc: Process, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.popen.poll() is None, proc.tail()
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{proc.name} never became ready:\n{proc.tail()}")


def test_an_idle_api_and_gateway_sleep_until_a_request_comes(stack: Stack) -> None:
    # Processes of their own, which no other test sends requests to.
    api_port, gateway_port = free_port(), free_port()
    api = stack.spawn("api-idle", "api", extra_env={"ROOST_API_PORT": str(api_port)})
    gateway = stack.spawn(
        "gateway-idle", "gateway", extra_env={"ROOST_GATEWAY_PORT": str(gateway_port)}
    )
    try:
        _ready(f"http://127.0.0.1:{api_port}", api)
        _ready(f"http://127.0.0.1:{gateway_port}", gateway)
        time.sleep(1.0)  # the readiness requests' own follow-up settles
        main_threads = {p.name: p.pid for p in (api, gateway)}
        before = {name: _sleeps(pid, pid) for name, pid in main_threads.items()}
        time.sleep(WATCH)
        woke = {name: _sleeps(pid, pid) - before[name] for name, pid in main_threads.items()}
        # uvicorn's housekeeping tick (once a second here; ten times before) is all that
        # should wake them; the api's run listener (psycopg's notifies() looked every
        # 0.1 s) wakes only for a NOTIFY (another test's run may end meanwhile).
        assert woke["api-idle"] <= 3 * WATCH, woke
        assert woke["gateway-idle"] <= 3 * WATCH, woke
        # ...and asleep is not deaf: both still answer at once.
        assert httpx.get(f"http://127.0.0.1:{api_port}/ready", timeout=2).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{gateway_port}/ready", timeout=2).status_code == 200
    finally:
        for proc in (api, gateway):
            stack.stop_one(proc)


def test_an_idle_span_shipper_sleeps_and_still_ships_the_next_span(stack: Stack) -> None:
    topology = Topology(f"idle{uuid.uuid4().hex[:8]}")
    url = stack.env["ROOST_BROKER_URL"]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(topology.spans_queue, auto_delete=True)
    shipper = SpanShipper(url, topology, "roost-test", delay=0.05)
    try:
        time.sleep(0.3)  # the thread has started and found nothing
        tid = shipper._thread.native_id
        assert tid is not None
        before = _sleeps(os.getpid(), tid)
        time.sleep(WATCH)
        # It used to wake every ``delay`` (here 60 times in 3 s) to find nothing.
        assert _sleeps(os.getpid(), tid) - before <= 2

        now = time.time()
        shipper.ship(
            {
                "run_id": str(uuid.uuid4()),
                "trace_id": uuid.uuid4().hex,
                "span_id": uuid.uuid4().hex[:16],
                "name": "after a long sleep",
                "kind": "internal",
                "start": now,
                "end": now,
            }
        )
        deadline = time.monotonic() + 5
        body = None
        while body is None and time.monotonic() < deadline:
            _, _, body = channel.basic_get(topology.spans_queue, auto_ack=True)
            time.sleep(0.02)
        assert body is not None, "the span shipped after an idle spell never arrived"
        [shipped] = decode(body)
        assert shipped["name"] == "after a long sleep"
        assert shipped["service"] == "roost-test"
    finally:
        shipper.shutdown()
        connection.close()
