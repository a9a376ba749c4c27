"""The durable-task benchmark (issue #18, part of ``just bench``).

N durable tasks (default 10,000) each sleep until one shared time T (``sleep_until``),
served by one worker process with 8 slots. It reports what a waiting task costs (the
bytes of its task_runs row, the worker's memory while N wait against before) and how
late they resume: when the engine sent each one again (its resumed attempt's queued
time minus T: the engine's lag) and when it woke on the worker (the time the task
returns minus T: that plus the worker's capacity), p50, p99 and max.

    .venv/bin/python tests/bench/durable_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(TESTS), str(REPO)]

import importlib  # noqa: E402
import os  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.stats import percentile  # noqa: E402
from harness import Stack  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 120)


def rss_mb(pid: int) -> float:
    """The resident memory of ``pid`` and its children (a worker's Dramatiq processes)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def spawn_to_start(flows: Any, n: int) -> None:
    """A child run's spawn-to-start (its trigger inside a task, to its task's start on a
    worker) beside an ordinary trigger's (from this client), one run at a time each."""
    ordinary = []
    for _ in range(n):
        at = time.time()
        ref = flows.child.run({}, wait_for_result=False)
        ordinary.append(ref.result(timeout=60)["started"]["started"] - at)
    asked = flows.parent.run({"n": n})["spawn"]["asked"]
    spawned = [started - at for at, started in asked]
    table = Table(title=f"Trigger to first task start, {n} runs one at a time (ms)")
    table.add_column("trigger")
    table.add_column("p50", justify="right")
    table.add_column("p99", justify="right")
    for name, values in (("ordinary (client)", ordinary), ("child (inside a task)", spawned)):
        table.add_row(
            name, f"{percentile(values, 50) * 1000:.1f}", f"{percentile(values, 99) * 1000:.1f}"
        )
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--children", type=int, default=200, help="child runs to time")
    args = parser.parse_args()
    n = args.runs
    stack = Stack(Path(tempfile.mkdtemp(prefix="roost-durable-bench-")))
    try:
        stack.start()
        for key in ("ROOST_API_URL", "ROOST_TOKEN", "ROOST_BROKER_URL", "ROOST_NAMESPACE"):
            os.environ[key] = stack.env[key]
        os.environ["ROOST_TLS_STRATEGY"] = "none"
        flows = importlib.import_module("bench.durable_flows")
        worker = stack.start_worker("bench.durable_flows:worker", processes=1, threads=8)
        idle_rss = rss_mb(worker.pid)
        # Enough time to trigger them all and for all to suspend before T.
        at = time.time() + 20 + n / 150
        console.print(
            f"triggering {n} durable runs sleeping until T = now + {at - time.time():.0f} s"
        )
        refs = []
        for start in range(0, n, 500):
            refs += flows.napping.run_many([{"at": at} for _ in range(min(500, n - start))])
        while True:
            ((waiting,),) = stack.sql("SELECT count(*) FROM task_runs WHERE status = 'WAITING'")
            if waiting >= n or time.time() > at - 1:
                break
            time.sleep(0.5)
        ((row_bytes, attempt_bytes),) = stack.sql(
            "SELECT avg(pg_column_size(t.*)),"
            " (SELECT avg(pg_column_size(a.*)) FROM task_attempts a)"
            " FROM task_runs t WHERE t.status = 'WAITING'"
        )
        waiting_rss = rss_mb(worker.pid)
        console.print(f"{waiting} waiting at T - {at - time.time():.1f} s")
        woke = []
        for ref in refs:
            woke.append(ref.result(timeout=600)["nap"]["woke"])
        lags = [w - at for w in woke]
        # When the engine sent each resumed attempt (its queued_at), apart from when a
        # worker got to run it: the first is the engine's lag, the second adds capacity.
        sent = [
            float(r[0]) - at
            for r in stack.sql(
                "SELECT extract(epoch FROM queued_at) FROM task_runs WHERE task_name = 'nap'"
            )
        ]
        table = Table(title=f"Durable tasks: {n} sleeping until one time, 1 worker x 8 slots")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_row("waiting before T", f"{waiting:,}")
        table.add_row("bytes per waiting task (task_runs row)", f"{float(row_bytes or 0):,.0f}")
        table.add_row(
            "bytes per suspended attempt (task_attempts row)", f"{float(attempt_bytes or 0):,.0f}"
        )
        table.add_row(
            "worker RSS idle -> all waiting (MB)", f"{idle_rss:,.0f} -> {waiting_rss:,.0f}"
        )
        table.add_row("sent again p50 (s after T)", f"{percentile(sent, 50):.2f}")
        table.add_row("sent again p99 (s after T)", f"{percentile(sent, 99):.2f}")
        table.add_row("resume lag p50 (s)", f"{percentile(lags, 50):.2f}")
        table.add_row("resume lag p99 (s)", f"{percentile(lags, 99):.2f}")
        table.add_row("resume lag max (s)", f"{max(lags):.2f}")
        table.add_row("resumed per second", f"{n / max(max(lags), 0.001):,.0f}")
        console.print(table)
        spawn_to_start(flows, args.children)
        worker.stop()
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
