"""Where a run's milliseconds go, from the span store (issue #17).

Runs N four-task line runs one after another (the bench's W2 workflow) on a fresh stack,
then reads every span the stack stored for them and prints one run's spans on a shared
time axis, and each span's median start and duration over all the runs, relative to
the trigger. A hand-off shows as: the parent's ``task`` span (the worker; it ends once
its result is confirmed), the ``schedule`` decision (the scheduler's transaction), the
child's ``queue`` span (ready until a worker thread has it), the child's ``task`` span.

    .venv/bin/python tests/bench/handoff_timeline.py [--runs 60]
"""

from __future__ import annotations

import argparse
import collections
import importlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(TESTS), str(TESTS.parent)]

from harness import Stack  # noqa: E402

SpanRow = tuple[str, str, str, float, float, str]
_SPANS = (
    "SELECT run_id::text, name, service, extract(epoch FROM started_at)::float8,"
    " extract(epoch FROM ended_at)::float8, attributes::text FROM spans"
    " WHERE run_id = ANY(%s::uuid[]) ORDER BY run_id, started_at"
)


def timeline(stack: Stack, runs: int) -> dict[str, list[SpanRow]]:
    for key in ("ROOST_API_URL", "ROOST_TOKEN", "ROOST_BROKER_URL", "ROOST_NAMESPACE"):
        os.environ[key] = stack.env[key]
    os.environ["ROOST_TLS_STRATEGY"] = stack.env["ROOST_TLS_STRATEGY"]
    flows = importlib.import_module("bench.bench_flows")
    stack.start_worker("bench.bench_flows:worker", processes=2, threads=8, name="worker")
    from roost import Roost

    wf = flows.build_handoff(Roost())
    wf.register()
    wf.run({"warmup": True}, timeout=60)
    ids = []
    for i in range(runs):
        ref = wf.run({"i": i}, wait_for_result=False)
        ref.result(timeout=30)
        ids.append(ref.id)
    time.sleep(3)  # spans are shipped in batches after the run ends
    by_run: dict[str, list[SpanRow]] = collections.defaultdict(list)
    for row in stack.sql(_SPANS, ids):
        by_run[str(row[0])].append(row)  # type: ignore[arg-type]
    return by_run


def report(by_run: dict[str, list[SpanRow]]) -> None:
    middle = sorted(by_run)[len(by_run) // 2]
    spans = by_run[middle]
    t0 = spans[0][3]
    print(f"run {middle} (ms from its first span):")
    for _, name, service, start, end, _attrs in spans:
        print(f"{(start - t0) * 1000:8.2f} .. {(end - t0) * 1000:8.2f}  {service:<16} {name}")
    starts: dict[str, list[float]] = collections.defaultdict(list)
    lengths: dict[str, list[float]] = collections.defaultdict(list)
    for spans in by_run.values():
        base = spans[0][3]
        seen: collections.Counter[str] = collections.Counter()
        for _, name, service, start, end, _attrs in spans:
            seen[f"{service}:{name}"] += 1
            key = f"{service}:{name} #{seen[f'{service}:{name}']}"
            starts[key].append((start - base) * 1000)
            lengths[key].append((end - start) * 1000)
    print(f"\nmedian start and duration (ms) over {len(by_run)} runs:")
    for key in sorted(starts, key=lambda k: statistics.median(starts[k])):
        print(
            f"{statistics.median(starts[key]):8.2f} {statistics.median(lengths[key]):7.2f}  {key}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=60, help="sequential runs (60)")
    args = parser.parse_args()
    stack = Stack(Path(tempfile.mkdtemp(prefix="roost-timeline-")) / "stack")
    try:
        stack.start()
        report(timeline(stack, args.runs))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
