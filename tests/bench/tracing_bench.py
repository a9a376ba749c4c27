"""Tracing's benchmark (part of ``just bench``): what tracing costs W1's throughput.

W1 (N runs of a 4-task linear DAG of no-op tasks, as in bench.py), one `wf.run` per run
and ``--bulk`` runs per `wf.run_many` request, with tracing in each mode:

- off    ``OTEL_SDK_DISABLED=true``: no tracer provider at all.
- store  nothing configured (the default): Roost's span store; spans go over RabbitMQ to
         the scheduler, which stores them in PostgreSQL (``spans``).
- otlp   ``OTEL_EXPORTER_OTLP_ENDPOINT`` at a local OTLP/HTTP receiver (a process of its
         own that reads each request and answers 200) and ``ROOST_TRACE_STORE=false``:
         the OTLP exporter alone.
- both   the OTLP endpoint with the span store on (what a user who configures OTLP gets).

Each mode gets a fresh stack (tests/harness.py: its own database and vhost, the api, one
scheduler, the gateway, the ratelimiter) and Roost worker; the modes are interleaved over
``--rounds`` rounds to spread the machine's noise, and the table shows each mode's
median. Everything it starts it stops, by PID.

    .venv/bin/python tests/bench/tracing_bench.py [--quick] [--runs N] [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
# Run as a script, this folder is sys.path[0] and ``bench`` would name bench.py; the
# package ``bench`` (this folder) must be found from tests/ instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(TESTS), str(REPO)]

from rich.table import Table  # noqa: E402

from bench.bench import (  # noqa: E402
    Throughput,
    _cpu_model,
    console,
    log,
    stop_process,
    w1_roost,
)
from harness import Process, Stack  # noqa: E402

MODES = ("off", "store", "otlp", "both")
# Tracing settings a mode sets; any of them in the caller's environment would blur the
# modes, so none is inherited (they are put back at the end).
TRACING_VARS = (
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_TRACES_EXPORTER",
    "ROOST_TRACE_STORE",
)
CLIENT_VARS = (
    "ROOST_API_URL",
    "ROOST_TOKEN",
    "ROOST_BROKER_URL",
    "ROOST_NAMESPACE",
    "ROOST_TLS_STRATEGY",
)
SPANS_QUIET_SECONDS = 2.0  # the span count is final once it holds still this long
SPANS_TIMEOUT = 60.0
LOG_PROBLEMS = ("Traceback", "ERROR", "CRITICAL")

# The OTLP/HTTP receiver, run as `python -c RECEIVER <counters file>`: a process of its
# own, so it takes no GIL from the bench's client threads. It reads each body fully,
# answers 200 with an empty protobuf, and rewrites its counters file after each request
# (and on SIGTERM). It prints its port once it listens.
RECEIVER = r"""
import json, os, signal, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

path = sys.argv[1]
lock = threading.Lock()
counts = {"requests": 0, "bytes": 0, "other_paths": 0}


def dump():
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(counts, f)
    os.replace(tmp, path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        size = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                size += len(self.rfile.read(n))
                self.rfile.readline()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                size = len(self.rfile.read(length))
        with lock:
            counts["requests"] += 1
            counts["bytes"] += size
            if not self.path.endswith("/v1/traces"):
                counts["other_paths"] += 1
            dump()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


def stop(*_):
    with lock:
        dump()
    os._exit(0)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
signal.signal(signal.SIGTERM, stop)
with lock:
    dump()
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@dataclass
class Receiver:
    popen: subprocess.Popen[bytes]
    port: int
    counters: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, folder: Path) -> Receiver:
        counters = folder / "otlp-receiver.json"
        errors = folder / "otlp-receiver.log"
        with errors.open("wb") as err:
            popen = subprocess.Popen(
                [sys.executable, "-c", RECEIVER, str(counters)],
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        try:
            assert popen.stdout is not None
            line = popen.stdout.readline().strip()
            if not line:
                raise RuntimeError(f"the OTLP receiver did not start: {errors.read_text()}")
            return cls(popen, int(line), counters)
        except BaseException:
            cls._end(popen)
            raise

    @staticmethod
    def _end(popen: subprocess.Popen[bytes]) -> None:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(5)
        if popen.stdout is not None:
            popen.stdout.close()

    def stop(self) -> dict[str, int]:
        """Stop it (by PID) and return its counters."""
        self._end(self.popen)
        try:
            return cast(dict[str, int], json.loads(self.counters.read_text()))
        except (OSError, ValueError):
            return {}


@dataclass
class Sample:
    """One mode in one round."""

    mode: str
    round: int
    loadavg: str
    single: Throughput | None = None
    bulk: Throughput | None = None
    spans: int | None = None
    runs: int = 0  # runs in the database, warm-ups included
    otlp: dict[str, int] | None = None
    error: str | None = None
    log_problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        # Each W1 counts every run of the workflow, the earlier workload's too.
        return max((t.failed for t in (self.single, self.bulk) if t is not None), default=0)


def mode_env(mode: str, receiver: Receiver | None) -> dict[str, str]:
    env: dict[str, str] = {}
    if mode == "off":
        env["OTEL_SDK_DISABLED"] = "true"
    if receiver is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    if mode == "otlp":
        env["ROOST_TRACE_STORE"] = "false"
    return env


def count(stack: Stack, query: str) -> int:
    return int(cast(int, stack.sql(query)[0][0]))


def settled_spans(stack: Stack) -> int:
    """Rows in ``spans`` once the count stops growing (spans arrive in batches, after
    their runs have ended)."""
    last, since = -1, time.monotonic()
    deadline = since + SPANS_TIMEOUT
    while True:
        value = count(stack, "SELECT count(*) FROM spans")
        now = time.monotonic()
        if value != last:
            last, since = value, now
        elif now - since >= SPANS_QUIET_SECONDS or now > deadline:
            return value
        time.sleep(0.25)


def scan_logs(folder: Path) -> dict[str, list[str]]:
    """Lines that look like trouble in each process's log."""
    found: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.log")):
        lines = [
            line.strip()
            for line in path.read_text(errors="replace").splitlines()
            if any(word in line for word in LOG_PROBLEMS)
        ]
        if lines:
            found[path.name] = lines
    return found


def run_mode(args: argparse.Namespace, mode: str, rnd: int, workdir: Path) -> Sample:
    sample = Sample(mode, rnd, " ".join(f"{x:.2f}" for x in os.getloadavg()))
    folder = workdir / f"round{rnd}-{mode}"
    folder.mkdir(parents=True)
    stack = Stack(folder / "stack")
    receiver: Receiver | None = None
    worker: Process | None = None
    try:
        if mode in ("otlp", "both"):
            receiver = Receiver.start(folder)
        env = mode_env(mode, receiver)
        log(f"[bold]{mode}[/] (round {rnd}): starting the stack {' '.join(sorted(env))}")
        # The mode's settings reach the stack's processes and the worker, not this one.
        stack.extra_env = env
        stack.start()
        for key in CLIENT_VARS:
            os.environ[key] = stack.env[key]
        sys.modules.pop("bench.bench_flows", None)
        flows = importlib.import_module("bench.bench_flows")
        worker = stack.start_worker(
            "bench.bench_flows:worker",
            processes=args.processes,
            threads=args.threads,
            name="roost-worker",
        )
        roots = {p.name: p.pid for p in stack.processes}

        sample.single = w1_roost(stack, flows, args.runs, args.clients, roots)
        log(f"  W1 single: {describe(sample.single)}")
        sample.bulk = w1_roost(stack, flows, args.runs, args.clients, roots, bulk=args.bulk)
        log(f"  W1 bulk ({args.bulk}/request): {describe(sample.bulk)}")

        store = mode in ("store", "both")
        sample.spans = settled_spans(stack) if store else count(stack, "SELECT count(*) FROM spans")
        sample.runs = count(stack, "SELECT count(*) FROM runs")
        log(f"  spans stored: {sample.spans:,} for {sample.runs:,} runs")
    except Exception as exc:  # noqa: BLE001 - reported in the table, the exit code
        sample.error = f"{type(exc).__name__}: {exc}"
        log(f"[red]{mode} (round {rnd}) failed: {sample.error}")
    finally:
        if worker is not None:
            stop_process(worker)
            with contextlib.suppress(ValueError):
                stack.processes.remove(worker)
        stack.stop()
        # After the stack: its processes flush their exporters as they stop.
        if receiver is not None:
            sample.otlp = receiver.stop()
            log(f"  OTLP receiver: {sample.otlp}")
        sample.log_problems = scan_logs(folder / "stack")
        for name, lines in sample.log_problems.items():
            log(f"  [yellow]{name}: {len(lines)} line(s) like {lines[0][:150]!r}")
    return sample


def describe(t: Throughput) -> str:
    other = t.cpu.usage.get("everything else", 0.0)
    # Where the CPU went, per process group, in ms per run: what a mode adds shows here.
    per_run = {
        name: pct / 100.0 * t.cpu.wall * 1000.0 / t.count
        for name, pct in sorted(t.cpu.usage.items(), key=lambda kv: -kv[1])
        if name != "everything else"
    }
    breakdown = ", ".join(f"{name} {ms:.2f}" for name, ms in per_run.items())
    return (
        f"{t.per_second:.1f} runs/s, {t.cpu_ms_per_run:.2f} CPU ms/run, "
        f"machine {t.cpu.machine:.0f}% busy (other processes {other:.0f}% of a core)"
        + (f", [red]{t.failed} not SUCCEEDED" if t.failed else "")
        + f"\n    CPU ms/run by process: {breakdown}"
    )


# -- report ---------------------------------------------------------------------------------


def spread(values: list[float], digits: int | None = None, ranged: bool = True) -> str:
    """The median, and the range over rounds when there are several (``digits``: 0 from
    100 up, else 1)."""
    if not values:
        return "-"
    median = statistics.median(values)
    if digits is None:
        digits = 0 if median >= 100 else 1
    text = f"{median:,.{digits}f}"
    if ranged and len(values) > 1:
        text += f" ({min(values):,.{digits}f}-{max(values):,.{digits}f})"
    return text


def versus(values: list[float], baseline: list[float]) -> str:
    if not values or not baseline:
        return "-"
    ratio = statistics.median(values) / statistics.median(baseline)
    return f"{ratio:.2f}x ({(ratio - 1) * 100:+.0f}%)"


def report(args: argparse.Namespace, samples: list[Sample], facts: dict[str, str]) -> None:
    def values(mode: str, kind: str, what: str) -> list[float]:
        out = []
        for s in samples:
            t = getattr(s, kind)
            if s.mode == mode and t is not None:
                out.append(float(getattr(t, what)))
        return out

    caption = "\n".join(
        [
            f"machine: {facts['nproc']} CPUs ({facts['cpu']}), load average before start: "
            f"{facts['loadavg']}; Python {facts['python']}",
            f"W1: {args.runs} runs of a 4-task no-op chain from {args.clients} client threads; "
            f"single: one wf.run per run; bulk: wf.run_many of {args.bulk}; worker "
            f"{args.processes} processes x {args.threads} threads; a fresh stack per mode",
            f"runs/s: median of {args.rounds} round(s) (min-max over rounds), modes interleaved: "
            f"{', '.join(args.modes)}; vs off: median / off's median",
            "CPU ms/run (median): CPU time of the stack, worker, PostgreSQL, RabbitMQ and the "
            "bench client per run (the OTLP receiver not counted)",
            "spans stored/run: rows in spans / runs (warm-ups included); OTLP requests: POSTs "
            "the receiver got over the stack's whole life (median)",
        ]
    )
    table = Table(title="W1 throughput by tracing mode", caption=caption, caption_justify="left")
    for name in (
        "mode",
        "W1 single runs/s",
        "W1 bulk runs/s",
        "vs off (single)",
        "vs off (bulk)",
        "CPU ms/run single",
        "CPU ms/run bulk",
        "spans stored/run",
        "OTLP requests",
    ):
        table.add_column(
            name, justify="left" if name == "mode" else "right", no_wrap=name == "OTLP requests"
        )
    for mode in args.modes:
        mine = [s for s in samples if s.mode == mode]
        errors = sum(1 for s in mine if s.error)
        single = values(mode, "single", "per_second")
        bulk = values(mode, "bulk", "per_second")
        per_run = [s.spans / s.runs for s in mine if s.spans is not None and s.runs]
        requests = [float(s.otlp.get("requests", 0)) for s in mine if s.otlp is not None]
        mb = [s.otlp.get("bytes", 0) / 1e6 for s in mine if s.otlp is not None]
        table.add_row(
            mode + (f" ({errors} errored)" if errors else ""),
            spread(single),
            spread(bulk),
            "-" if mode == "off" else versus(single, values("off", "single", "per_second")),
            "-" if mode == "off" else versus(bulk, values("off", "bulk", "per_second")),
            spread(values(mode, "single", "cpu_ms_per_run"), 2, ranged=False),
            spread(values(mode, "bulk", "cpu_ms_per_run"), 2, ranged=False),
            spread(per_run, 1, ranged=False),
            f"{statistics.median(requests):,.0f} ({statistics.median(mb):,.1f} MB)"
            if requests
            else "-",
        )
    console.print(table)
    for s in samples:
        if s.error:
            console.print(f"[red]{s.mode}, round {s.round}: {s.error}")
        if s.failed:
            console.print(f"[red]{s.mode}, round {s.round}: {s.failed} runs not SUCCEEDED")


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, help="W1 runs per workload (default 2000; --quick 200)")
    parser.add_argument("--rounds", type=int, help="rounds over the modes (default 2; --quick 1)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process (8)")
    parser.add_argument("--clients", type=int, default=8, help="W1 client threads (8)")
    parser.add_argument(
        "--bulk", type=int, default=100, help="runs per wf.run_many request in W1 bulk (100)"
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"tracing modes, comma-separated, in this order (default {','.join(MODES)})",
    )
    parser.add_argument("--quick", action="store_true", help="small numbers, a smoke check")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 200 if args.quick else 2000
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    for name in ("runs", "rounds", "processes", "threads", "clients", "bulk"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.runs % args.bulk:
        parser.error("--runs must be a multiple of --bulk")
    args.modes = [m.strip().lower() for m in args.modes.split(",") if m.strip()]
    if not args.modes or set(args.modes) - set(MODES) or len(set(args.modes)) < len(args.modes):
        parser.error(f"--modes: each at most once, from {', '.join(MODES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": sys.version.split()[0],
    }
    saved = {key: os.environ.pop(key, None) for key in (*TRACING_VARS, *CLIENT_VARS)}
    workdir = Path(tempfile.mkdtemp(prefix="roost-tracing-bench-"))
    samples: list[Sample] = []
    ok = False
    try:
        log(f"work folder {workdir}; {args.rounds} round(s) of {', '.join(args.modes)}")
        for rnd in range(1, args.rounds + 1):
            for mode in args.modes:
                samples.append(run_mode(args, mode, rnd, workdir))
        report(args, samples, facts)
        ok = not any(s.error or s.failed for s in samples)
        return 0 if ok else 1
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"logs kept in {workdir}")


if __name__ == "__main__":
    sys.exit(main())
