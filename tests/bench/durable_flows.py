"""The durable-task benchmark's workflows (tests/bench/durable_bench.py): one durable
task that sleeps until a given time and says when it woke; a child that says when it
started, and a parent that triggers children one at a time, saying when it asked for
each. Workers run ``roost worker bench.durable_flows:worker``."""

from __future__ import annotations

import time
from typing import Any

from roost import Context, DurableContext, Roost

roost = Roost()
napping = roost.workflow("bench-durable-nap")


@napping.durable_task(execution_timeout="10m")
async def nap(input: Any, ctx: DurableContext) -> dict[str, float]:
    await ctx.sleep_until(float(input["at"]))
    return {"woke": time.time()}


child = roost.workflow("bench-child")


@child.task()
def started(input: Any, ctx: Context) -> dict[str, float]:
    return {"started": time.time()}


parent = roost.workflow("bench-parent")


@parent.task(execution_timeout="10m")
def spawn(input: Any, ctx: Context) -> dict[str, list[list[Any]]]:
    """Trigger ``n`` children one after another (each waited for, so the one measured
    is alone): when each was asked for, and when it started."""
    asked = []
    for _ in range(int(input["n"])):
        at = time.time()
        ref = child.run({}, wait_for_result=False)
        asked.append([at, ref.result(timeout=60)["started"]["started"]])
    return {"asked": asked}


worker = roost.worker("bench-durable", workflows=[napping, child, parent], slots=8)
