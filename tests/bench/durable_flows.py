"""The durable-task benchmark's workflow (tests/bench/durable_bench.py): one durable
task that sleeps until a given time and says when it woke. Workers run
``roost worker bench.durable_flows:worker``."""

from __future__ import annotations

import time
from typing import Any

from roost import DurableContext, Roost

roost = Roost()
napping = roost.workflow("bench-durable-nap")


@napping.durable_task(execution_timeout="10m")
async def nap(input: Any, ctx: DurableContext) -> dict[str, float]:
    await ctx.sleep_until(float(input["at"]))
    return {"woke": time.time()}


worker = roost.worker("bench-durable", workflows=[napping], slots=8)
