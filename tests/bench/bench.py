"""Roost's benchmark (``just bench``): Roost against raw Dramatiq on the same RabbitMQ.

- W1  N runs of a 4-task linear DAG of no-op tasks, triggered from several client
      threads at once; runs/s and tasks/s from the first trigger to the last run's
      ``finished_at``. Beside it: N four-actor ``dramatiq.pipeline``s of no-op actors on
      the same broker, run by ``dramatiq`` CLI workers with the same processes x threads,
      from the first enqueue to the last actor of the last pipeline.
- W2  runs one after another: trigger -> done (client wall time), and the hand-off from a
      task's end to its child's start (timestamps taken inside the tasks).
- W3  one run of 1 -> N parallel children -> 1 join: trigger -> done.
- IDLE  what the whole stack (every service, the worker, PostgreSQL and RabbitMQ) costs
      with nothing to do: % of one core per process over a quiet stretch, after the
      other workloads have settled.
- W4  event fan-out through the gateway: 1, 100 and 1,000 subscribers to one workflow's
      event stream while a task streams chunks stamped with ``time.time()``; latency from
      the task's stamp to each subscriber's receipt (p50/p99), and the gateway's RSS with
      every subscriber attached. Clients run in several processes (``--per-client-process``)
      so that they are not the bottleneck; their CPU is reported beside the numbers.

It starts its own stack (tests/harness.py: a fresh database and vhost, the api and one
scheduler) and stops everything it started, by PID, when it ends.

With ``--statements`` the stack runs on a private PostgreSQL server the bench starts
(and always stops) with ``pg_stat_statements`` loaded and the shared server's durability
settings, and W1, W1 bulk and W2 each end with a table of where PostgreSQL spent the
phase: the top statements by execution time, per run, each named after its block in
Roost's ``.sql`` files, with statements and PostgreSQL milliseconds per run
(tests/bench/pg_statements.py). The other tables still print, but measured on the
private server: compare them with other ``--statements`` runs only.

    .venv/bin/python tests/bench/bench.py [--quick] [--runs N] [--sequential N] ...
    .venv/bin/python tests/bench/bench.py --workloads W4 [--subscribers 1,100,1000]
    .venv/bin/python tests/bench/bench.py --workloads W1,W2 --statements
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
# Run as a script, this folder is sys.path[0] and ``bench`` would name this very file;
# the package ``bench`` (this folder) must be found from tests/ instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(TESTS), str(REPO)]

import dramatiq  # noqa: E402
import pika  # noqa: E402
import psycopg  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.pg_statements import PrivatePostgres, StatementProbe  # noqa: E402
from bench.pg_statements import report as report_statements  # noqa: E402
from bench.stats import percentile  # noqa: E402
from harness import PG_ADMIN_URL, Process, Stack  # noqa: E402

# Wide enough for the table when the output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 130)
STALL_SECONDS = 120.0  # give up when nothing finishes for this long
SLOW_WORKLOAD_SECONDS = 300.0
WORKLOADS = ("W1", "W2", "W3", "W4", "IDLE")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- small helpers -------------------------------------------------------------------


def log(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False)


def fire(
    threads: int,
    count: int,
    prepare: Callable[[int], Any],
    trigger: Callable[[Any, int], None],
    settle: Callable[[], None],
) -> tuple[float, float]:
    """Run ``count`` triggers from ``threads`` threads as fast as they go.

    Each thread first calls ``prepare(i)`` (its own client, warmed up); once all are
    prepared the main thread calls ``settle()`` (wait for the warm-up to finish), then
    every thread calls ``trigger(state, k)`` for its share of ``k``. Returns the time of
    the first trigger and the time the last trigger returned (``time.time()``)."""
    ready = threading.Barrier(threads + 1, timeout=300)
    go = threading.Barrier(threads + 1, timeout=300)
    firsts: list[float] = []
    lasts: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def body(i: int) -> None:
        try:
            state = prepare(i)
            ready.wait()
            go.wait()
            first = time.time()
            for k in range(i, count, threads):
                trigger(state, k)
            last = time.time()
            with lock:
                firsts.append(first)
                lasts.append(last)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            with lock:
                errors.append(exc)
            ready.abort()
            go.abort()

    workers = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(threads)]
    for t in workers:
        t.start()
    try:
        ready.wait()
        settle()
        go.wait()
    except threading.BrokenBarrierError:
        pass
    except BaseException:
        ready.abort()
        go.abort()
        raise
    for t in workers:
        t.join()
    if errors:
        raise errors[0]
    return min(firsts), max(lasts)


def wait_until(what: str, progress: Callable[[], int], target: int) -> None:
    """Poll ``progress()`` until it reaches ``target``; fail after STALL_SECONDS without
    any progress."""
    last_value, last_change = -1, time.monotonic()
    while True:
        value = progress()
        if value >= target:
            return
        now = time.monotonic()
        if value != last_value:
            last_value, last_change = value, now
        elif now - last_change > STALL_SECONDS:
            raise RuntimeError(f"{what}: stuck at {value}/{target} for {STALL_SECONDS:.0f} s")
        time.sleep(0.1)


# -- CPU accounting from /proc -----------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, comm, utime+stime ticks of all its threads)."""
    table: dict[int, tuple[int, str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        lp, rp = data.find("("), data.rfind(")")
        fields = data[rp + 2 :].split()
        table[int(entry)] = (int(fields[1]), data[lp + 1 : rp], int(fields[11]) + int(fields[12]))
    return table


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


@dataclass
class CpuMeter:
    """CPU used by each group of processes between start() and stop(), in % of one core.
    ``roots`` name process trees (a pid and all its descendants); PostgreSQL and RabbitMQ
    are found by command name; this process (the client threads) is "bench client".
    Processes that ended in between are not counted."""

    roots: dict[str, int]
    usage: dict[str, float] = field(default_factory=dict)
    machine: float = 0.0
    wall: float = 0.0

    def start(self) -> CpuMeter:
        self._before = _proc_table()
        self._machine_before = _machine_ticks()
        self._t0 = time.monotonic()
        return self

    def stop(self) -> CpuMeter:
        after = _proc_table()
        busy1, total1 = _machine_ticks()
        wall = self.wall = time.monotonic() - self._t0
        busy0, total0 = self._machine_before
        self.machine = 100.0 * (busy1 - busy0) / max(1, total1 - total0)
        children: dict[int, list[int]] = defaultdict(list)
        for pid, (ppid, _, _) in after.items():
            children[ppid].append(pid)
        # This process is the parent of the stack's processes: count only itself.
        group: dict[int, str] = {os.getpid(): "bench client"}
        for name, root in self.roots.items():
            todo = [root]
            while todo:
                pid = todo.pop()
                if pid in after and pid not in group:
                    group[pid] = name
                    todo.extend(children.get(pid, []))
        for pid, (_, comm, _) in after.items():
            if pid in group:
                continue
            if comm.startswith("postgres"):
                group[pid] = "postgres"
            elif comm in ("beam.smp", "erl_child_setup", "inet_gethost", "epmd"):
                group[pid] = "rabbitmq"
        totals: dict[str, float] = defaultdict(float)
        for pid, name in group.items():
            ticks = after[pid][2]
            before = self._before.get(pid)
            if before is not None and before[1] == after[pid][1]:
                ticks -= before[2]
            totals[name] += ticks
        self.usage = {name: 100.0 * t / CLK_TCK / wall for name, t in totals.items()}
        # Whatever the machine did beyond the groups above: other processes (other work on
        # the machine, processes that ended in between), the kernel.
        machine_one_core = 100.0 * (busy1 - busy0) / CLK_TCK / wall
        self.usage["everything else"] = max(0.0, machine_one_core - sum(self.usage.values()))
        return self


# -- the workloads -------------------------------------------------------------------------


IDLE_SETTLE_SECONDS = 10.0


def idle(roots: dict[str, int], seconds: float) -> CpuMeter:
    """CPU of every process of the stack over ``seconds`` with nothing to do, after
    ``IDLE_SETTLE_SECONDS`` for the last workload's leftovers (outbox deletes, spans,
    retention) to clear."""
    time.sleep(IDLE_SETTLE_SECONDS)
    meter = CpuMeter(roots).start()
    time.sleep(seconds)
    return meter.stop()


def report_idle(meter: CpuMeter, services: set[str]) -> None:
    table = Table(
        title=f"IDLE: CPU with nothing to do (% of one core, over {meter.wall:.0f} s)",
        caption="Roost's processes together: "
        + f"{sum(v for k, v in meter.usage.items() if k in services):.2f}% of one core "
        + "(issue #17's target: <= 2%)",
    )
    table.add_column("process")
    table.add_column("% of one core", justify="right")
    for name, value in sorted(meter.usage.items(), key=lambda kv: -kv[1]):
        if name != "bench client":
            table.add_row(name, f"{value:.2f}")
    console.print(table)


@dataclass
class Throughput:
    count: int
    tasks: int
    wall: float  # first trigger -> last finished
    trigger_wall: float  # first trigger -> last trigger returned
    failed: int
    cpu: CpuMeter

    @property
    def per_second(self) -> float:
        return self.count / self.wall

    @property
    def tasks_per_second(self) -> float:
        return self.tasks / self.wall

    @property
    def trigger_rate(self) -> float:
        return self.count / self.trigger_wall

    @property
    def cpu_ms_per_run(self) -> float:
        """CPU time of the benchmark's own processes (stack or raw worker, PostgreSQL,
        RabbitMQ, the client) per run: less sensitive to other work on the machine."""
        ours = sum(v for k, v in self.cpu.usage.items() if k != "everything else")
        return ours / 100.0 * self.cpu.wall * 1000.0 / self.count


def w1_roost(
    stack: Stack,
    flows: ModuleType,
    runs: int,
    clients: int,
    roots: dict[str, int],
    bulk: int = 0,
    probe: StatementProbe | None = None,
) -> Throughput:
    """W1 with one `wf.run` per run, or with ``bulk`` runs per `wf.run_many` request;
    ``probe`` reads PostgreSQL's statements over the same window as the CPU meter."""
    from roost import Roost

    poll = psycopg.connect(probe.client_url if probe else stack.database_url, autocommit=True)
    (baseline,) = poll.execute(
        "SELECT count(*) FROM runs WHERE workflow_name = %s", (flows.LINEAR,)
    ).fetchone() or (0,)

    def done_runs() -> int:
        row = poll.execute(
            "SELECT count(*) FROM runs WHERE workflow_name = %s "
            "AND status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')",
            (flows.LINEAR,),
        ).fetchone()
        return int(row[0]) - baseline if row else 0

    def prepare(i: int) -> Any:
        wf = flows.build_linear(Roost())
        wf.register()
        wf.run({"warmup": i}, wait_for_result=False)
        return wf

    def settle() -> None:
        wait_until("W1 warm-up", done_runs, clients)
        meter.start()
        if probe:
            probe.begin()

    def trigger(wf: Any, k: int) -> None:
        if bulk:
            wf.run_many([{"i": k * bulk + j} for j in range(bulk)])
        else:
            wf.run({"i": k}, wait_for_result=False)

    meter = CpuMeter(roots)
    try:
        first, last = fire(clients, runs // bulk if bulk else runs, prepare, trigger, settle)
        wait_until("W1 Roost runs", done_runs, clients + runs)
        meter.stop()
        if probe:
            probe.end(f"W1 bulk ({bulk}/request)" if bulk else "W1", runs)
    finally:
        poll.close()
    row = stack.sql(
        "SELECT extract(epoch FROM max(finished_at))::float8, "
        "count(*) FILTER (WHERE status <> 'SUCCEEDED') FROM runs WHERE workflow_name = %s"
        " AND input ? 'i'",
        flows.LINEAR,
    )[0]
    finished, failed = float(row[0]), int(row[1])  # type: ignore[arg-type, call-overload]
    return Throughput(runs, runs * 4, finished - first, last - first, failed, meter)


def w1_raw(raw: ModuleType, runs: int, clients: int, roots: dict[str, int]) -> Throughput:
    tag = f"b{uuid.uuid4().hex[:8]}"

    def prepare(i: int) -> Any:
        raw.pipeline("warm").run()  # opens this thread's connection and channel
        return None

    def settle() -> None:
        wait_until("raw warm-up", lambda: raw.finished("warm")[0], clients)
        meter.start()

    def trigger(_: Any, k: int) -> None:
        raw.pipeline(tag).run()

    meter = CpuMeter(roots)
    first, last = fire(clients, runs, prepare, trigger, settle)
    wait_until("W1 raw pipelines", lambda: raw.finished(tag)[0], runs)
    meter.stop()
    _, latest = raw.finished(tag)
    assert latest is not None
    return Throughput(runs, runs * 4, latest - first, last - first, 0, meter)


@dataclass
class Latency:
    total: list[float]  # trigger -> done, seconds
    handoff: list[float]  # child start - parent end, seconds
    slowest: str = ""  # where the slowest run spent its time
    engine: list[float] = field(default_factory=list)  # trigger -> runs.finished_at
    late: list[float] = field(default_factory=list)  # runs.finished_at -> client has it


def w2_sequential(
    stack: Stack, flows: ModuleType, runs: int, probe: StatementProbe | None = None
) -> Latency:
    from roost import Roost

    wf = flows.build_handoff(Roost())
    wf.register()
    wf.run({"warmup": True}, timeout=60)
    if probe:
        probe.begin()
    total: list[float] = []
    handoff: list[float] = []
    worst: tuple[float, str, float, float, dict[str, Any]] | None = None
    times: dict[str, tuple[float, float]] = {}  # run id -> (triggered, client has it)
    for i in range(runs):
        t0, w0 = time.perf_counter(), time.time()
        ref = wf.run({"i": i}, wait_for_result=False)
        result = ref.result(timeout=120)
        took = time.perf_counter() - t0
        total.append(took)
        times[ref.id] = (w0, time.time())
        for parent, child in (("t1", "t2"), ("t2", "t3"), ("t3", "t4")):
            handoff.append(result[child]["start"] - result[parent]["end"])
        if worst is None or took > worst[0]:
            worst = (took, ref.id, w0, time.time(), result)
    if probe:
        probe.end("W2 sequential", runs)
    finished = dict(
        stack.sql(  # type: ignore[arg-type]
            "SELECT id::text, extract(epoch FROM finished_at)::float8 FROM runs WHERE id = ANY(%s)",
            list(times),
        )
    )
    engine = [float(finished[r]) - w0 for r, (w0, _) in times.items()]  # type: ignore[arg-type]
    late = [done - float(finished[r]) for r, (_, done) in times.items()]  # type: ignore[arg-type]
    return Latency(total, handoff, _breakdown(stack, *worst) if worst else "", engine, late)


def _breakdown(
    stack: Stack, took: float, run_id: str, triggered: float, done: float, result: dict[str, Any]
) -> str:
    """Where one W2 run spent its time, from the client's, the tasks' and the database's
    clocks (all on this machine)."""
    row = stack.sql(
        "SELECT extract(epoch FROM r.created_at)::float8, "
        "extract(epoch FROM t.queued_at)::float8, extract(epoch FROM r.finished_at)::float8 "
        "FROM runs r JOIN task_runs t ON t.run_id = r.id AND t.task_name = 't1' "
        "WHERE r.id = %s",
        run_id,
    )[0]
    created, queued, finished = (float(v) for v in row)  # type: ignore[arg-type]
    marks = [
        ("trigger -> run row created", created - triggered),
        ("created -> t1 queued", queued - created),
        ("t1 queued -> t1 starts", result["t1"]["start"] - queued),
        ("t1 start -> t4 end", result["t4"]["end"] - result["t1"]["start"]),
        ("t4 end -> run finished", finished - result["t4"]["end"]),
        ("run finished -> client has it", done - finished),
    ]
    return f"slowest W2 run {took * 1000:.0f} ms: " + ", ".join(
        f"{name} {ms * 1000:.0f} ms" for name, ms in marks
    )


def w3_fanout(flows: ModuleType, width: int) -> float:
    from roost import Roost, RunStatus

    client = Roost()
    wf = flows.build_fanout(client, width)
    wf.register()
    t0 = time.perf_counter()
    ref = wf.run({}, wait_for_result=False)
    run = client.runs.wait(ref.id, timeout=STALL_SECONDS * 5)
    wall = time.perf_counter() - t0
    if run.status != RunStatus.SUCCEEDED:
        raise RuntimeError(f"W3 run {ref.id} ended {run.status}")
    return wall


# -- W4: event fan-out through the gateway ------------------------------------------------------

# The emitting workflow: roost_testapps.flows:fan_worker serves "t-fan-bulk", whose task puts
# {"i": i, "at": time.time(), "pad": "x" * size} in each stream chunk.
W4_WORKER = "roost_testapps.flows:fan_worker"
W4_WORKFLOW = "t-fan-bulk"
W4_PAUSE = 0.1  # seconds between chunks: 10 events/s to every subscriber
W4_SIZE = 64  # bytes of padding per chunk
W4_TERMINAL = ("run.succeeded", "run.failed", "run.cancelled")


@dataclass
class FanoutLevel:
    subscribers: int
    client_processes: int
    latency: list[float]  # seconds, task emits (time.time() in the chunk) -> received
    attach_seconds: float  # from starting the client processes to all attached
    stream_seconds: float  # trigger -> every subscriber saw the run end
    gateway_cpu: float  # % of one core, over stream_seconds
    client_cpu: list[float]  # % of one core, each client process, same window
    rss_attached_kib: int  # gateway VmRSS, every subscriber attached, before the run
    rss_after_kib: int  # ... and once the run streamed to all of them (still attached)


@dataclass
class Fanout:
    levels: list[FanoutLevel]
    rss_idle_kib: int  # gateway VmRSS before the first subscriber
    chunks: int
    per_process: int
    loadavg: str = ""  # before W4 (other work on the machine skews latency)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _w4_client(url: str, token: str, count: int, out: Any, release: Any) -> None:
    """One client process (multiprocessing target): ``count`` subscribers to ``url``.
    Puts ("attached", count) once all have their response headers (the gateway subscribes
    a client before it answers), ("done", latencies) once each has seen a run end, or
    ("error", text); keeps every connection open until ``release`` is set."""
    import asyncio

    try:
        asyncio.run(_w4_subscribe(url, token, count, out, release))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        out.put(("error", f"{type(exc).__name__}: {exc}"))


async def _w4_subscribe(url: str, token: str, count: int, out: Any, release: Any) -> None:
    import asyncio
    import json

    import httpx

    attached = finished = 0
    latencies: list[float] = []
    all_read, released = asyncio.Event(), asyncio.Event()
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal attached, finished
        async with client.stream("GET", url, headers=headers) as resp:
            resp.raise_for_status()
            attached += 1
            if attached == count:
                out.put(("attached", count))
            kind = ""
            mine: list[float] = []
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    if kind == "task.stream":
                        received = time.time()
                        mine.append(received - json.loads(line[5:])["data"]["at"])
                    elif kind in W4_TERMINAL:
                        break
            latencies.extend(mine)
            finished += 1
            if finished == count:
                all_read.set()
            await released.wait()  # stay attached while the gateway's memory is read

    limits = httpx.Limits(max_connections=count + 5, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120, read=None)) as client:
        tasks = [asyncio.create_task(one(client)) for _ in range(count)]
        waiter = asyncio.create_task(all_read.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            if t.done():
                t.result()  # a subscriber ended early: raise its error
        out.put(("done", latencies))
        await asyncio.to_thread(release.wait)
        released.set()
        await asyncio.gather(*tasks)


def _w4_collect(out: Any, kind: str, processes: int, timeout: float) -> list[Any]:
    """One ``kind`` message from each client process."""
    import queue

    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < processes:
        try:
            what, value = out.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError(
                f"W4: {len(got)}/{processes} client processes reported {kind!r} "
                f"within {timeout:.0f} s"
            ) from None
        if what == "error":
            raise RuntimeError(f"W4 client process failed: {value}")
        if what != kind:
            raise RuntimeError(f"W4: expected {kind!r} from a client process, got {what!r}")
        got.append(value)
    return got


def _wait_no_subscribers(stack: Stack, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{stack.gateway_url}/ready", timeout=10).json()["subscribers"] == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("W4: the gateway still has subscribers after the clients left")


def w4_event_fanout(stack: Stack, levels: list[int], chunks: int, per_process: int) -> Fanout:
    """For each number of subscribers: attach them all (in client processes of at most
    ``per_process`` connections each) to the workflow's stream, run one task that emits
    ``chunks`` stream chunks ``W4_PAUSE`` s apart, and time each chunk from the task's
    clock to each subscriber's (one machine, one clock)."""
    import multiprocessing

    fan = importlib.import_module("roost_testapps.flows").fan_bulk
    gateway = next(p.pid for p in stack.processes if p.name == "gateway")
    url = f"{stack.gateway_url}/api/v1/workflows/{W4_WORKFLOW}/events"
    ctx = multiprocessing.get_context("spawn")
    _wait_no_subscribers(stack)
    loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result = Fanout([], _rss_kib(gateway), chunks, per_process, loadavg)
    for n in levels:
        count = -(-n // per_process)
        shares = [n // count + (1 if i < n % count else 0) for i in range(count)]
        out, release = ctx.Queue(), ctx.Event()
        procs = [
            ctx.Process(
                target=_w4_client,
                args=(url, stack.token, k, out, release),
                name=f"w4-client-{i}",
                daemon=True,
            )
            for i, k in enumerate(shares)
        ]
        log(f"W4: {n} subscriber(s) in {count} client process(es)")
        t0 = time.monotonic()
        for p in procs:
            p.start()
        try:
            _w4_collect(out, "attached", count, timeout=120)
            attach = time.monotonic() - t0
            rss_attached = _rss_kib(gateway)
            gw0 = _cpu_ticks(gateway)
            cl0 = [_cpu_ticks(p.pid or 0) for p in procs]
            w0 = time.monotonic()
            ref = fan.run(
                {"chunks": chunks, "size": W4_SIZE, "pause": W4_PAUSE}, wait_for_result=False
            )
            ref.result(timeout=STALL_SECONDS)
            lists = _w4_collect(out, "done", count, timeout=STALL_SECONDS)
            wall = time.monotonic() - w0
            gw1, cl1 = _cpu_ticks(gateway), [_cpu_ticks(p.pid or 0) for p in procs]
            rss_after = _rss_kib(gateway)
        finally:
            release.set()
            for p in procs:
                p.join(30)
                if p.is_alive():
                    p.terminate()
                    p.join(5)
        latency = [x for lst in lists for x in lst]
        if len(latency) != n * chunks:
            raise RuntimeError(f"W4: {len(latency)} chunks received, expected {n * chunks}")
        result.levels.append(
            FanoutLevel(
                n,
                count,
                latency,
                attach,
                wall,
                100.0 * (gw1 - gw0) / CLK_TCK / wall,
                [100.0 * (b - a) / CLK_TCK / wall for a, b in zip(cl0, cl1, strict=True)],
                rss_attached,
                rss_after,
            )
        )
        level = result.levels[-1]
        log(
            f"W4: {n} subscriber(s): p50 {1000 * percentile(latency, 50):.1f} ms, "
            f"p99 {1000 * percentile(latency, 99):.1f} ms; gateway RSS "
            f"{level.rss_after_kib / 1024:.1f} MiB"
        )
        _wait_no_subscribers(stack)
    return result


# -- the raw Dramatiq worker -----------------------------------------------------------------


def start_raw_worker(env: dict[str, str], workdir: Path, processes: int, threads: int) -> Process:
    log_path = workdir / "raw-worker.log"
    popen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dramatiq",
            "bench.raw_dramatiq:broker",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
        ],
        env=env,
        cwd=REPO,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc = Process("raw-worker", popen, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        if text.count("Worker process is ready for action") >= processes:
            return proc
        if popen.poll() is not None:
            break
        time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError(f"raw dramatiq worker did not start:\n{proc.tail()}")


def stop_process(proc: Process) -> None:
    """SIGTERM the process (Dramatiq's CLI passes it on to its children); if it does not
    end, SIGKILL the session it leads, which only it and its children are in."""
    if proc.popen.poll() is None:
        proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.popen.wait(5)


def delete_queues(broker_url: str, queue: str) -> None:
    try:
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    except pika.exceptions.AMQPError:
        return
    try:
        channel = connection.channel()
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
    except pika.exceptions.AMQPError:
        pass
    finally:
        connection.close()


# -- facts and the report ---------------------------------------------------------------------


def rabbitmq_version(broker_url: str) -> str:
    try:
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    except pika.exceptions.AMQPError:
        return "?"
    try:
        props = connection._impl.server_properties  # noqa: SLF001
        version = props.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        connection.close()


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def report(
    args: argparse.Namespace,
    facts: dict[str, str],
    roost_w1: Throughput | None,
    roost_bulk: Throughput | None,
    raw_w1: Throughput | None,
    w2: Latency | None,
    w3: float | None,
    elapsed: dict[str, float],
    w4: Fanout | None = None,
    roost_loop: Throughput | None = None,
) -> None:
    """The results of the workloads that ran (``--workloads``); None: not run."""
    lines = [
        f"machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['platform']}; "
        f"Python {facts['python']}; dramatiq {dramatiq.__version__}; "
        f"PostgreSQL {facts['postgres']}; RabbitMQ {facts['rabbitmq']}",
    ]
    if roost_w1 is not None:
        lines.append(
            f"W1: {args.runs} runs x 4 no-op tasks (linear), {args.clients} client threads each "
            f"with its own Roost client (wf.run(wait_for_result=False)); worker {args.processes} "
            f"processes x {args.threads} threads; raw: {args.runs} dramatiq.pipeline of 4 no-op "
            f"actors, RabbitmqBroker(confirm_delivery=True), default middleware, `dramatiq` CLI "
            f"{args.processes} x {args.threads}, same {args.clients} enqueuing threads"
        )
    if w2 is not None:
        lines.append(
            f"W2: {args.sequential} runs one after another (trigger, wait, next), 4-task line; "
            f"hand-off = child start - parent end, 3 per run ({3 * args.sequential} samples)"
        )
    if w3 is not None:
        lines.append(
            f"W3: one run of 1 -> {args.fanout} parallel no-op children -> 1 join "
            f"({args.fanout + 2} tasks)"
        )
    if w2 is not None:
        lines.append(w2.slowest)
    lines.append("elapsed per workload: " + ", ".join(f"{k} {v:.0f} s" for k, v in elapsed.items()))
    caption = "\n".join(lines)
    if roost_w1 is not None or w2 is not None or w3 is not None:
        _report_w1_w3(args, facts, caption, roost_w1, roost_bulk, raw_w1, w2, w3, roost_loop)
    else:
        console.print(caption, highlight=False)
    if w4 is not None:
        report_w4(w4)


def _report_w1_w3(
    args: argparse.Namespace,
    facts: dict[str, str],
    caption: str,
    roost_w1: Throughput | None,
    roost_bulk: Throughput | None,
    raw_w1: Throughput | None,
    w2: Latency | None,
    w3: float | None,
    roost_loop: Throughput | None = None,
) -> None:
    table = Table(title="Roost benchmark", caption=caption, caption_justify="left")
    for name, justify in (
        ("workload", "left"),
        ("metric", "left"),
        ("Roost", "right"),
        ("raw Dramatiq", "right"),
        ("Roost/raw", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]

    def row(workload: str, metric: str, mine: float, theirs: float | None, digits: int = 1) -> None:
        ratio = f"{mine / theirs:.2f}" if theirs else "-"
        table.add_row(
            workload,
            metric,
            fmt(mine, digits),
            "-" if theirs is None else fmt(theirs, digits),
            ratio,
        )

    raw = raw_w1
    if roost_w1 is not None and roost_bulk is not None:
        row("W1 linear x4", "runs/s", roost_w1.per_second, raw and raw.per_second)
        row("", "tasks/s", roost_w1.tasks_per_second, raw and raw.tasks_per_second)
        row("", "wall: first trigger -> last done (s)", roost_w1.wall, raw and raw.wall, 2)
        row("", "trigger rate, client side (/s)", roost_w1.trigger_rate, raw and raw.trigger_rate)
        row(
            "", "CPU ms per run, our processes", roost_w1.cpu_ms_per_run, raw and raw.cpu_ms_per_run
        )
        table.add_row(
            "", "runs not SUCCEEDED", str(roost_w1.failed), "-" if raw is None else "0", ""
        )
        table.add_section()
        row(
            f"W1 bulk ({args.bulk}/request)",
            "runs/s",
            roost_bulk.per_second,
            raw and raw.per_second,
        )
        row("", "tasks/s", roost_bulk.tasks_per_second, raw and raw.tasks_per_second)
        row(
            "",
            "CPU ms per run, our processes",
            roost_bulk.cpu_ms_per_run,
            raw and raw.cpu_ms_per_run,
        )
        table.add_row("", "runs not SUCCEEDED", str(roost_bulk.failed), "-", "")
        table.add_section()
    if roost_loop is not None:
        # The newcomer's loop: one thread, one wf.run(wait_for_result=False) after another.
        row("W1 loop (1 thread)", "triggers/s, client side", roost_loop.trigger_rate, None)
        row("", "runs/s", roost_loop.per_second, None)
        row("", "CPU ms per run, our processes", roost_loop.cpu_ms_per_run, None)
        table.add_row("", "runs not SUCCEEDED", str(roost_loop.failed), "-", "")
        table.add_section()
    if w2 is not None:
        ms = [1000 * t for t in w2.total]
        hand = [1000 * t for t in w2.handoff]
        row("W2 sequential", "trigger -> done p50 (ms)", percentile(ms, 50), None)
        row("", "trigger -> done p99 (ms)", percentile(ms, 99), None)
        engine = [1000 * t for t in w2.engine]
        row("", "trigger -> runs.finished_at p50 (ms)", percentile(engine, 50), None)
        row("", "trigger -> runs.finished_at p99 (ms)", percentile(engine, 99), None)
        table.add_row(
            "",
            "runs the client saw > 1 s after they ended",
            str(sum(1 for t in w2.late if t > 1.0)),
            "-",
            "",
        )
        row("", "hand-off p50 (ms)", percentile(hand, 50), None)
        row("", "hand-off p99 (ms)", percentile(hand, 99), None)
        table.add_section()
    if w3 is not None:
        row(f"W3 1->{args.fanout}->1", "trigger -> done (s)", w3, None, 2)
        row("", "tasks/s", (args.fanout + 2) / w3, None)
    console.print(table)
    if roost_w1 is None or roost_bulk is None:
        return

    cpu = Table(
        title="CPU during W1 (% of one core, averaged over the workload)",
        caption=f"machine busy: Roost {roost_w1.cpu.machine:.0f}%"
        + (f", raw {raw.cpu.machine:.0f}%" if raw else "")
        + f" of all {facts['nproc']} CPUs; load average before the run: "
        + facts["loadavg"],
        caption_justify="left",
    )
    cpu.add_column("process")
    cpu.add_column("Roost W1", justify="right")
    cpu.add_column("Roost W1 bulk", justify="right")
    cpu.add_column("raw W1", justify="right")
    names = sorted(
        set(roost_w1.cpu.usage) | set(raw.cpu.usage if raw else {}),
        key=lambda n: -roost_w1.cpu.usage.get(n, 0.0),
    )
    for name in names:
        mine = roost_w1.cpu.usage.get(name)
        bulk = roost_bulk.cpu.usage.get(name)
        theirs = raw.cpu.usage.get(name) if raw else None
        cpu.add_row(
            name,
            "-" if mine is None else f"{mine:.0f}",
            "-" if bulk is None else f"{bulk:.0f}",
            "-" if theirs is None else f"{theirs:.0f}",
        )
    console.print(cpu)


def report_w4(w4: Fanout) -> None:
    caption = "\n".join(
        [
            f"W4: subscribers attach to GET /api/v1/workflows/{W4_WORKFLOW}/events, then one run "
            f"streams {w4.chunks} chunks ({W4_SIZE} B of padding, {W4_PAUSE:g} s apart), each "
            "stamped with time.time() by the task; latency = subscriber's time.time() on "
            "receipt - that stamp (one machine, one clock): task -> worker -> RabbitMQ -> "
            "scheduler -> PostgreSQL -> RabbitMQ -> gateway -> subscriber",
            f"clients: asyncio + httpx, at most {w4.per_process} connections per client process "
            "(multiprocessing, spawn); client CPU is each process's % of one core while the run "
            "streamed (near 100% would mean the client, not the gateway, is the bottleneck)",
            f"load average before W4: {w4.loadavg}; "
            f"gateway RSS before any subscriber: {w4.rss_idle_kib / 1024:.1f} MiB "
            "(VmRSS, /proc/<pid>/status); attached: every subscriber attached, before the run; "
            "after: once the run streamed to all of them, still attached",
        ]
    )
    table = Table(
        title="W4 event fan-out (task emits -> subscriber receives)",
        caption=caption,
        caption_justify="left",
    )
    for name in (
        "subscribers",
        "client procs",
        "samples",
        "p50 ms",
        "p99 ms",
        "max ms",
        "attach s",
        "gateway CPU %",
        "client CPU % max",
        "gateway RSS attached",
        "gateway RSS after",
    ):
        table.add_column(name, justify="right")
    for level in w4.levels:
        ms = [1000 * t for t in level.latency]
        table.add_row(
            f"{level.subscribers:,}",
            str(level.client_processes),
            f"{len(ms):,}",
            fmt(percentile(ms, 50)),
            fmt(percentile(ms, 99)),
            fmt(max(ms)),
            fmt(level.attach_seconds, 2),
            f"{level.gateway_cpu:.0f}",
            f"{max(level.client_cpu):.0f}",
            f"{level.rss_attached_kib / 1024:.1f} MiB",
            f"{level.rss_after_kib / 1024:.1f} MiB",
        )
    console.print(table)


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, help="W1 runs (default 2000; --quick 100)")
    parser.add_argument("--sequential", type=int, help="W2 runs (default 200; --quick 20)")
    parser.add_argument("--fanout", type=int, help="W3 width (default 500; --quick 50)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process (8)")
    parser.add_argument("--clients", type=int, default=8, help="W1 client threads (8)")
    parser.add_argument(
        "--bulk", type=int, default=50, help="runs per wf.run_many request in W1 bulk (50)"
    )
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"which to run, comma-separated (default {','.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--subscribers", help="W4 subscriber counts (default 1,100,1000; --quick 1,10,100)"
    )
    parser.add_argument(
        "--stream-chunks", type=int, help="W4 stream chunks per run (default 50; --quick 20)"
    )
    parser.add_argument(
        "--per-client-process",
        type=int,
        default=250,
        help="W4 subscribers per client process (250)",
    )
    parser.add_argument("--quick", action="store_true", help="small numbers, a smoke check")
    parser.add_argument(
        "--statements",
        action="store_true",
        help="run on a private PostgreSQL with pg_stat_statements; print the top statements "
        "of W1, W1 bulk and W2",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    defaults = {
        "runs": (2000, 100),
        "sequential": (200, 20),
        "fanout": (500, 50),
        "subscribers": ("1,100,1000", "1,10,100"),
        "stream_chunks": (50, 20),
    }
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for name in (
        "runs",
        "sequential",
        "fanout",
        "processes",
        "threads",
        "clients",
        "stream_chunks",
        "per_client_process",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    args.workloads = {w.strip().upper() for w in args.workloads.split(",") if w.strip()}
    if not args.workloads or args.workloads - set(WORKLOADS):
        parser.error(f"--workloads: choose from {', '.join(WORKLOADS)}")
    try:
        args.subscribers = [int(n) for n in args.subscribers.split(",")]
    except ValueError:
        parser.error("--subscribers: comma-separated whole numbers, such as 1,100,1000")
    if not args.subscribers or min(args.subscribers) < 1:
        parser.error("--subscribers must each be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="roost-bench-"))
    raw_out = workdir / "raw-out"
    raw_out.mkdir()
    raw_queue = f"rawbench_{uuid.uuid4().hex[:10]}"
    # The stack's processes inherit os.environ: the worker must build the same fan-out.
    os.environ["BENCH_FANOUT"] = str(args.fanout)
    private_pg: PrivatePostgres | None = None
    probe: StatementProbe | None = None
    stack = Stack(workdir / "stack")
    raw_proc: Process | None = None
    ok = False
    elapsed: dict[str, float] = {}
    try:
        if args.statements:
            private_pg = PrivatePostgres(PG_ADMIN_URL)
            log(f"starting a private PostgreSQL with pg_stat_statements in {private_pg.root}")
            private_pg.start()
            stack.pg_admin_url = private_pg.admin_url
        log(f"starting the stack in {workdir}")
        stack.start()
        if private_pg is not None:
            probe = StatementProbe(private_pg, stack.database_url)
        for key in (
            "ROOST_API_URL",
            "ROOST_TOKEN",
            "ROOST_BROKER_URL",
            "ROOST_NAMESPACE",
            "ROOST_TLS_STRATEGY",
        ):
            os.environ[key] = stack.env[key]
        raw_env = {
            "BENCH_RAW_BROKER_URL": stack.env["ROOST_BROKER_URL"],
            "BENCH_RAW_QUEUE": raw_queue,
            "BENCH_RAW_OUT": str(raw_out),
        }
        os.environ.update(raw_env)
        sys.modules.pop("bench.bench_flows", None)
        flows = importlib.import_module("bench.bench_flows")
        facts = {
            "nproc": str(os.cpu_count()),
            "python": platform.python_version(),
            "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
            "cpu": _cpu_model(),
            "loadavg": load_before,
            "postgres": str(stack.sql("SHOW server_version")[0][0]),
            "rabbitmq": rabbitmq_version(stack.env["ROOST_BROKER_URL"]),
        }
        services = {p.name: p.pid for p in stack.processes}
        # Every service of the stack by name (api, scheduler-0, gateway, ratelimiter, ...):
        # "our processes" in the CPU table means all of them.
        roots = dict(services)

        wanted = args.workloads
        roost_w1 = roost_bulk = roost_loop = raw_w1 = None
        w2: Latency | None = None
        w3: float | None = None
        w4: Fanout | None = None
        worker: Process | None = None
        if wanted & {"W1", "W2", "W3", "IDLE"}:
            log(f"starting the Roost worker ({args.processes} x {args.threads})")
            worker = stack.start_worker(
                "bench.bench_flows:worker",
                processes=args.processes,
                threads=args.threads,
                name="roost-worker",
            )

        if worker is not None and "W1" in wanted:
            t = time.monotonic()
            log(f"W1 Roost: {args.runs} runs from {args.clients} threads")
            roost_w1 = w1_roost(
                stack,
                flows,
                args.runs,
                args.clients,
                {**roots, "roost worker": worker.pid},
                probe=probe,
            )
            elapsed["W1 Roost"] = time.monotonic() - t
            log(f"W1 Roost: {roost_w1.per_second:.1f} runs/s")

            t = time.monotonic()
            log(f"W1 Roost, bulk: {args.runs} runs in requests of {args.bulk} (wf.run_many)")
            roost_bulk = w1_roost(
                stack,
                flows,
                args.runs,
                args.clients,
                {**roots, "roost worker": worker.pid},
                bulk=args.bulk,
                probe=probe,
            )
            elapsed["W1 Roost bulk"] = time.monotonic() - t
            log(f"W1 Roost, bulk: {roost_bulk.per_second:.1f} runs/s")

            t = time.monotonic()
            loop_runs = max(1, args.runs // 2)
            log(f"W1 Roost, loop: {loop_runs} runs from one thread (wf.run, no wait)")
            roost_loop = w1_roost(stack, flows, loop_runs, 1, {**roots, "roost worker": worker.pid})
            elapsed["W1 Roost loop"] = time.monotonic() - t
            log(f"W1 Roost, loop: {roost_loop.trigger_rate:.1f} triggers/s")

        if "W2" in wanted:
            t = time.monotonic()
            log(f"W2: {args.sequential} sequential runs")
            w2 = w2_sequential(stack, flows, args.sequential, probe)
            log(w2.slowest)
            elapsed["W2"] = time.monotonic() - t

        if "W3" in wanted:
            t = time.monotonic()
            log(f"W3: 1 -> {args.fanout} -> 1")
            w3 = w3_fanout(flows, args.fanout)
            elapsed["W3"] = time.monotonic() - t

        idle_cpu: CpuMeter | None = None
        if worker is not None and "IDLE" in wanted:
            seconds = 10.0 if args.quick else 30.0
            log(f"IDLE: {IDLE_SETTLE_SECONDS:.0f} s to settle, then {seconds:.0f} s measured")
            every = {p.name: p.pid for p in stack.processes if p is not worker}
            t = time.monotonic()
            idle_cpu = idle({**every, "roost worker": worker.pid}, seconds)
            elapsed["IDLE"] = time.monotonic() - t

        if worker is not None:
            # The raw side gets the machine to itself: no Roost worker polling alongside.
            worker.stop()
            stack.processes.remove(worker)

        if "W4" in wanted:
            t = time.monotonic()
            log(f"W4: event fan-out to {', '.join(map(str, args.subscribers))} subscribers")
            fan_worker = stack.start_worker(W4_WORKER, processes=1, threads=4, name="fan-worker")
            try:
                w4 = w4_event_fanout(
                    stack, args.subscribers, args.stream_chunks, args.per_client_process
                )
            finally:
                fan_worker.stop()
                stack.processes.remove(fan_worker)
            elapsed["W4"] = time.monotonic() - t

        if "W1" in wanted:
            log(f"starting the raw dramatiq worker ({args.processes} x {args.threads})")
            raw_proc = start_raw_worker(
                {**stack.env, **raw_env}, workdir, args.processes, args.threads
            )
            raw = importlib.import_module("bench.raw_dramatiq")
            t = time.monotonic()
            log(f"W1 raw Dramatiq: {args.runs} pipelines from {args.clients} threads")
            raw_w1 = w1_raw(raw, args.runs, args.clients, {**roots, "raw worker": raw_proc.pid})
            elapsed["W1 raw"] = time.monotonic() - t
            log(f"W1 raw: {raw_w1.per_second:.1f} pipelines/s")
            raw.broker.close()

        for name, seconds in elapsed.items():
            if seconds > SLOW_WORKLOAD_SECONDS:
                log(f"[yellow]{name} took {seconds:.0f} s (over {SLOW_WORKLOAD_SECONDS:.0f} s)")
        report(args, facts, roost_w1, roost_bulk, raw_w1, w2, w3, elapsed, w4, roost_loop)
        if idle_cpu is not None:
            report_idle(idle_cpu, {p.name for p in stack.processes} | {"roost worker"})
        if probe is not None and private_pg is not None:
            report_statements(console, probe.phases, private_pg.settings)
        ok = True
        return 0
    finally:
        if raw_proc is not None:
            stop_process(raw_proc)
        if "ROOST_BROKER_URL" in stack.env and getattr(stack, "vhost", "/") == "/":
            delete_queues(stack.env["ROOST_BROKER_URL"], raw_queue)
        if probe is not None:
            probe.close()
        stack.stop()
        if private_pg is not None:
            private_pg.stop()
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"logs kept in {workdir}")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


if __name__ == "__main__":
    sys.exit(main())
