"""Workflows for the dashboard's benchmark (tests/bench/dashboard_bench.py).

- ``bench-dag-500``: 500 tasks in 20 layers of 25; every task past the first layer
  waits for two tasks of the layer before it (its own column and the next), so the graph
  has 950 edges that cross, as a real fan-out/fan-in pipeline's do. Each task sleeps
  ``input["sleep"]`` seconds, so a run lasts long enough to watch it live.
- ``bench-catalog-0`` … ``-9``: one no-op task each; the benchmark registers them and
  writes a million runs of them straight into PostgreSQL.

Workers run ``roost worker bench.dashboard_flows:worker``.
"""

from __future__ import annotations

import time
from typing import Any

from roost import Context, Roost
from roost._workflow import Task, Workflow

DAG = "bench-dag-500"
LAYERS = 20
WIDTH = 25
CATALOG = [f"bench-catalog-{i}" for i in range(10)]


def nap(input: Any, ctx: Context) -> dict[str, Any]:
    time.sleep(float((input or {}).get("sleep", 0)))
    return {}


def build_dag(client: Roost) -> Workflow:
    wf = client.workflow(DAG)
    previous: list[Task] = []
    for layer in range(LAYERS):
        current = []
        for col in range(WIDTH):
            parents = [previous[col], previous[(col + 1) % WIDTH]] if previous else []
            current.append(wf.task(f"l{layer:02d}-t{col:02d}", parents=parents)(nap))
        previous = current
    return wf


def build_catalog(client: Roost) -> list[Workflow]:
    workflows = []
    for name in CATALOG:
        wf = client.workflow(name)
        wf.task("only")(nap)
        workflows.append(wf)
    return workflows


roost = Roost()
dag = build_dag(roost)
worker = roost.worker("dashboard-bench", workflows=[dag, *build_catalog(roost)], slots=8)
