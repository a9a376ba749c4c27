"""Roost workflows for the benchmark.

Workers run ``roost worker bench.bench_flows:worker``; bench.py imports this module (after
setting ROOST_* from the stack) and builds one copy of each workflow per client thread
with the ``build_*`` functions, so that each thread triggers through its own client.
BENCH_FANOUT (default 500) sets the width of the fan-out workflow; the worker and the
client must agree on it, so it is part of the workflow's name.
"""

from __future__ import annotations

import os
import time
from typing import Any

from roost import Context, Roost
from roost._workflow import Workflow

FANOUT = int(os.environ.get("BENCH_FANOUT", "500"))
LINEAR = "bench-linear"
HANDOFF = "bench-handoff"


def fanout_name(width: int) -> str:
    return f"bench-fanout-{width}"


def noop(input: Any, ctx: Context) -> dict[str, Any]:
    return {}


def stamp(input: Any, ctx: Context) -> dict[str, float]:
    start = time.time()
    return {"start": start, "end": time.time()}


def _chain(client: Roost, name: str, fn: Any, length: int = 4) -> Workflow:
    wf = client.workflow(name)
    previous = None
    for i in range(1, length + 1):
        previous = wf.task(f"t{i}", parents=[previous] if previous else [])(fn)
    return wf


def build_linear(client: Roost) -> Workflow:
    """W1: four no-op tasks in a line."""
    return _chain(client, LINEAR, noop)


def build_handoff(client: Roost) -> Workflow:
    """W2: four tasks in a line, each returning its own start and end time."""
    return _chain(client, HANDOFF, stamp)


def build_fanout(client: Roost, width: int = FANOUT) -> Workflow:
    """W3: one root, ``width`` parallel children, one join."""
    wf = client.workflow(fanout_name(width))
    root = wf.task("root")(noop)
    children = [wf.task(f"c{i:05d}", parents=[root])(noop) for i in range(width)]
    wf.task("join", parents=children)(noop)
    return wf


roost = Roost()
linear = build_linear(roost)
handoff = build_handoff(roost)
fanout = build_fanout(roost)
worker = roost.worker("bench", workflows=[linear, handoff, fanout], slots=8)
