"""The ratelimiter's benchmark (part of ``just bench``): what admission costs.

- R1  admissions per second: N one-task runs whose task takes a unit of a concurrency
      key far larger than the load (so nothing waits for units, only for admission),
      against N runs of the same task without a rate limit, same workers, same run.
- R2  latency admission adds: runs one after another, trigger -> task start (from the
      run's created_at to the task's started_at, both stamped by Roost), with and
      without the rate limit; p50 and p99.

    .venv/bin/python tests/bench/ratelimiter_bench.py [--runs N] [--sequential N]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(TESTS), str(REPO)]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.stats import percentile  # noqa: E402
from harness import Stack  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 120)


def _flows(stack: Stack) -> ModuleType:
    for key in (
        "ROOST_API_URL",
        "ROOST_GATEWAY_URL",
        "ROOST_TOKEN",
        "ROOST_BROKER_URL",
        "ROOST_NAMESPACE",
        "ROOST_TLS_STRATEGY",
    ):
        os.environ[key] = stack.env[key]
    sys.modules.pop("roost_testapps.flows", None)
    return importlib.import_module("roost_testapps.flows")


def throughput(stack: Stack, flows: ModuleType, wf: object, runs: int) -> float:
    """Tasks per second from the first trigger to the last task's end."""
    started = time.time()
    refs = []
    for i in range(0, runs, 500):
        refs += wf.run_many([{} for _ in range(min(500, runs - i))])  # type: ignore[attr-defined]
    for ref in refs:
        ref.result(timeout=300)
    (row,) = stack.sql(
        "SELECT extract(epoch FROM max(t.finished_at)) FROM task_runs t"
        " JOIN runs r ON r.id = t.run_id WHERE r.id = ANY(%s::uuid[])",
        [r.id for r in refs],
    )
    return runs / (float(str(row[0])) - started)


def start_latency(stack: Stack, wf: object, count: int) -> list[float]:
    """Milliseconds from each run's creation to its task's start, one run at a time."""
    out = []
    for _ in range(count):
        ref = wf.run({}, wait_for_result=False)  # type: ignore[attr-defined]
        ref.result(timeout=60)
        (row,) = stack.sql(
            "SELECT extract(epoch FROM t.started_at - r.created_at) * 1000 FROM runs r"
            " JOIN task_runs t ON t.run_id = r.id WHERE r.id = %s",
            ref.id,
        )
        out.append(float(str(row[0])))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2000, help="R1 runs per side (2000)")
    parser.add_argument("--sequential", type=int, default=100, help="R2 runs per side (100)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="roost-rl-bench-") as tmp:
        stack = Stack(Path(tmp))
        try:
            stack.start()
            flows = _flows(stack)
            flows.roost.rate_limits.put("rl-bench", limit=1_000_000)
            stack.start_worker(
                "roost_testapps.flows:rl_bencher",
                processes=args.processes,
                threads=args.threads,
                name="rl-bencher",
            )
            # Warm up both paths (imports, connections, prepared plans).
            throughput(stack, flows, flows.rl_bench_free, 100)
            throughput(stack, flows, flows.rl_bench, 100)
            console.print(f"R1: {args.runs} runs each, {args.processes}x{args.threads} slots")
            free = throughput(stack, flows, flows.rl_bench_free, args.runs)
            limited = throughput(stack, flows, flows.rl_bench, args.runs)
            console.print(f"R2: {args.sequential} sequential runs each")
            free_lat = start_latency(stack, flows.rl_bench_free, args.sequential)
            limited_lat = start_latency(stack, flows.rl_bench, args.sequential)
        finally:
            stack.stop()

    table = Table("workload", "no rate limit", "one rate limit", "cost")
    table.add_row(
        "R1 tasks/s (admissions/s)", f"{free:.0f}", f"{limited:.0f}", f"{limited / free:.2f}x"
    )
    for q in (50, 99):
        a, b = percentile(free_lat, q), percentile(limited_lat, q)
        table.add_row(f"R2 trigger -> start p{q} (ms)", f"{a:.1f}", f"{b:.1f}", f"{b - a:+.1f} ms")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
