"""The placement benchmark (issue #21, part of ``just bench``).

1. Hand-off: two worker processes (--threads slots each, default 4), both labelled
   zone=z1, size=4, serve the same four-task line a -> b -> c -> d as three workflows:
   plain (the shared queue), sticky (``sticky="hard"``) and labelled (each task
   requires zone z1, prefers size >= 2). R runs of each (--runs, default 200), one at a
   time and interleaved (plain, sticky, labelled, plain, ...) so that all three meet the
   same conditions. Per workflow: trigger -> d's end, and the hand-off (a task's end to
   its child's start, by the tasks' own ``time.time()``, as bench.py's W2), p50/p99,
   and the share of runs whose four tasks ran in one process.
2. Dispatch with many labelled workers: W worker processes (--workers, default 50, one
   slot each, one ``roost worker --processes W``) whose labels come from their pids
   (zone z1 or z2, size 0-7: tests/bench/placement_flows.py); once all W are live, N
   runs of the labelled workflow at once (--burst, default 500, ``wf.run_many``): how
   long until the last finished (runs.finished_at), runs/s, and the spread of the
   placement decisions over the z1 processes; it asserts that no task ran in a process
   lacking zone z1.

    .venv/bin/python tests/bench/placement_bench.py [--runs R] [--workers W] [--burst N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(TESTS), str(REPO)]

import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.stats import percentile  # noqa: E402
from harness import Stack  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 120)
TASKS = ("a", "b", "c", "d")
TARGET = "bench.placement_flows:worker"


def handoff(stack: Stack, flows: Any, runs: int, threads: int) -> None:
    """Part 1: the three workflows, one run at a time, interleaved, on two processes."""
    env = {"TEST_WORKER_LABELS": json.dumps({"zone": "z1", "size": 4}), "PB_SLOTS": str(threads)}
    workers = [
        stack.start_worker(TARGET, processes=1, threads=threads, name=f"pb-{i}", extra_env=env)
        for i in range(2)
    ]
    wait_live(stack, 2, timeout=60)
    kinds = {"plain": flows.plain, "sticky (hard)": flows.sticky, "labelled": flows.labelled}
    total: dict[str, list[float]] = {k: [] for k in kinds}
    hand: dict[str, list[float]] = {k: [] for k in kinds}
    one_process: Counter[str] = Counter()
    for wf in kinds.values():  # warm up: registered, connections open
        wf.run({"warmup": True}, timeout=60)
    console.print(f"part 1: {runs} runs of each workflow, interleaved, on 2 processes")
    for i in range(runs):
        for kind, wf in kinds.items():
            at = time.time()
            result = wf.run({"i": i}, timeout=120)
            total[kind].append(result["d"]["end"] - at)
            for parent, child in zip(TASKS, TASKS[1:], strict=False):
                hand[kind].append(result[child]["start"] - result[parent]["end"])
            if len({result[t]["worker"] for t in TASKS}) == 1:
                one_process[kind] += 1
    table = Table(title=f"Placement hand-off: {runs} runs each, a -> b -> c -> d, 2 processes")
    table.add_column("workflow")
    for col in ("trigger -> d end p50", "p99", "hand-off p50", "p99"):
        table.add_column(f"{col} (ms)", justify="right")
    table.add_column("runs in one process", justify="right")
    for kind in kinds:
        table.add_row(
            kind,
            *(f"{percentile(v, q) * 1000:.1f}" for v in (total[kind],) for q in (50, 99)),
            *(f"{percentile(v, q) * 1000:.1f}" for v in (hand[kind],) for q in (50, 99)),
            f"{one_process[kind] / runs:.0%}",
        )
    console.print(table)
    if one_process["sticky (hard)"] != runs:
        console.print(f"[red]FAIL: {runs - one_process['sticky (hard)']} sticky runs moved")
    for w in workers:
        stack.stop_one(w)


def live_workers(stack: Stack) -> list[dict[str, Any]]:
    """Live processes of this bench's worker, from their heartbeats."""
    listed = stack.api_get("/api/v1/workers")["workers"]
    return [w for w in listed if w["name"] == "placement-bench" and w["status"] == "alive"]


def wait_live(stack: Stack, n: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        live = live_workers(stack)
        if len(live) >= n:
            return live
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(live)} of {n} worker processes live after {timeout:.0f} s")
        time.sleep(0.5)


def dispatch(stack: Stack, flows: Any, n_workers: int, burst: int) -> bool:
    """Part 2: ``burst`` labelled runs at once over ``n_workers`` labelled processes.
    False if a task ran in a process lacking zone z1."""
    t = time.monotonic()
    proc = stack.spawn(
        "pb-many",
        *("worker", TARGET, "--processes", str(n_workers), "--threads", "1"),
        extra_env={"PB_LABELS_BY_PID": "1", "PB_SLOTS": "1"},
    )
    live = wait_live(stack, n_workers, timeout=max(60.0, 2.0 * n_workers))
    labels = {w["id"]: w["labels"] for w in live}
    fitting = sorted(i for i, lab in labels.items() if lab.get("zone") == "z1")
    console.print(
        f"part 2: {len(live)} processes live after {time.monotonic() - t:.0f} s, "
        f"{len(fitting)} in zone z1; {burst} labelled runs at once"
    )
    if not fitting:
        raise RuntimeError("no process in zone z1 (pids all even): run again")
    # A first burst warms the new processes up (their first messages are slow: imports,
    # connections); then the same burst of plain runs, then the labelled one measured.
    warm = flows.plain.run_many([{"i": i} for i in range(burst)])
    _finished(stack, [r.id for r in warm], burst)
    plain_at = time.time()
    plain = flows.plain.run_many([{"i": i} for i in range(burst)])
    _, plain_last, _ = _finished(stack, [r.id for r in plain], burst)
    plain_took = float(plain_last or plain_at) - plain_at
    at = time.time()
    refs = flows.labelled.run_many([{"i": i} for i in range(burst)])
    triggered = time.time() - at
    done, last, failed = _finished(stack, [r.id for r in refs], burst)
    took = float(last or at) - at
    tasks: Counter[str] = Counter()
    runs_on: dict[str, set[str]] = {}
    outside: list[str] = []
    preferred = 0
    for ref in refs:
        result = ref.result(timeout=60)
        for task in TASKS:
            out = result[task]
            tasks[out["worker"]] += 1
            runs_on.setdefault(out["worker"], set()).add(ref.id)
            # The process's own labels, and what the api listed for it, must both say z1.
            if out["zone"] != "z1" or labels.get(out["worker"], {}).get("zone") != "z1":
                outside.append(f"{ref.id}/{task} on {out['worker']} (zone {out['zone']})")
            preferred += out["size"] >= 2
    per_task = [tasks.get(w, 0) for w in fitting]
    per_run = [len(runs_on.get(w, ())) for w in fitting]
    table = Table(title=f"Dispatch: {burst} labelled runs, {len(live)} processes x 1 slot")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("runs finished (not succeeded)", f"{done} ({failed})")
    table.add_row("trigger (run_many) took (s)", f"{triggered:.2f}")
    table.add_row("trigger -> last run finished (s)", f"{took:.2f}")
    table.add_row("runs/s", f"{burst / max(took, 0.001):,.1f}")
    table.add_row("plain runs, same processes: runs/s", f"{burst / max(plain_took, 0.001):,.1f}")
    table.add_row("processes in zone z1 / used", f"{len(fitting)} / {len(tasks)}")
    table.add_row("tasks per z1 process min / max", f"{min(per_task)} / {max(per_task)}")
    table.add_row("runs per z1 process min / max", f"{min(per_run)} / {max(per_run)}")
    table.add_row("tasks where size >= 2 (preferred)", f"{preferred / (4 * burst):.0%}")
    table.add_row("tasks outside zone z1", str(len(outside)))
    console.print(table)
    for line in outside[:10]:
        console.print(f"[red]FAIL: {line}")
    stack.stop_one(proc)
    return not outside and done == burst and not failed


def _finished(stack: Stack, ids: list[str], burst: int) -> tuple[int, float | None, int]:
    """Wait until the runs ``ids`` have all finished (or a deadline passed): how many
    did, when the last one did (unix seconds), and how many did not succeed."""
    deadline = time.monotonic() + 120 + burst / 5
    while True:
        ((done, last, failed),) = stack.sql(
            "SELECT count(*), extract(epoch FROM max(finished_at))::float8,"
            " count(*) FILTER (WHERE status <> 'SUCCEEDED')"
            " FROM runs WHERE id = ANY(%s::uuid[]) AND finished_at IS NOT NULL",
            ids,
        )
        if done >= burst or time.monotonic() > deadline:
            return int(done), last, int(failed)
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=200, help="part 1: runs of each workflow")
    parser.add_argument("--threads", type=int, default=4, help="part 1: threads per process")
    parser.add_argument("--workers", type=int, default=50, help="part 2: worker processes")
    parser.add_argument("--burst", type=int, default=500, help="part 2: runs triggered at once")
    args = parser.parse_args()
    stack = Stack(Path(tempfile.mkdtemp(prefix="roost-placement-bench-")))
    try:
        stack.start()
        for key in ("ROOST_API_URL", "ROOST_TOKEN", "ROOST_BROKER_URL", "ROOST_NAMESPACE"):
            os.environ[key] = stack.env[key]
        os.environ["ROOST_TLS_STRATEGY"] = "none"
        flows = importlib.import_module("bench.placement_flows")
        handoff(stack, flows, args.runs, args.threads)
        ok = dispatch(stack, flows, args.workers, args.burst)
    finally:
        stack.stop()
    assert ok, "a labelled task ran outside zone z1, or a run did not succeed"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
