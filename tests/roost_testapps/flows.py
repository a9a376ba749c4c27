"""Test workflows. Workers run this module as `roost worker roost_testapps.flows:NAME`;
tests import it to trigger runs. Tasks record timestamps so tests can check ordering
and overlap from the tasks' own clocks."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pydantic import BaseModel

from roost import Context, Roost

roost = Roost()

# -- a linear chain, sync and async ---------------------------------------------------
chain = roost.workflow("t-chain")


@chain.task()
def check_deps(input: dict, ctx: Context) -> dict:
    return {"deps": ["a", "b"], "task_id": input["task_id"], "t": time.time()}


@chain.task(parents=[check_deps])
async def process(input: dict, ctx: Context) -> dict:
    await asyncio.sleep(0)
    return {"n": len(ctx.task_output(check_deps)["deps"]), "t": time.time()}


@chain.task(parents=[process])
def verify(input: dict, ctx: Context) -> dict:
    return {"ok": ctx.task_output(process)["n"] == 2, "t": time.time()}


@chain.task(parents=[verify])
def commit(input: dict, ctx: Context) -> dict:
    return {
        "committed": ctx.task_output(verify)["ok"],
        "task_id": input["task_id"],
        "t": time.time(),
    }


# -- a diamond whose middle tasks must overlap -----------------------------------------
diamond = roost.workflow("t-diamond")


@diamond.task()
def start(input: dict, ctx: Context) -> dict:
    return {"seed": input.get("seed", 1)}


@diamond.task(parents=[start])
def left(input: dict, ctx: Context) -> dict:
    began = time.time()
    time.sleep(0.5)
    return {"value": ctx.task_output(start)["seed"] * 2, "began": began, "ended": time.time()}


@diamond.task(parents=[start])
async def right(input: dict, ctx: Context) -> dict:
    began = time.time()
    await asyncio.sleep(0.5)
    return {"value": ctx.task_output(start)["seed"] * 3, "began": began, "ended": time.time()}


@diamond.task(parents=[left, right])
def join(input: dict, ctx: Context) -> dict:
    return {"sum": ctx.task_output(left)["value"] + ctx.task_output(right)["value"]}


# -- a failure in one branch -------------------------------------------------------------
failing = roost.workflow("t-failing")


@failing.task()
def begin(input: dict, ctx: Context) -> dict:
    return {}


@failing.task(parents=[begin])
def explode(input: dict, ctx: Context) -> dict:
    raise RuntimeError(f"boom for {input.get('task_id')}")


@failing.task(parents=[explode])
def after_explode(input: dict, ctx: Context) -> dict:
    return {"should": "never run"}


@failing.task(parents=[begin])
def independent(input: dict, ctx: Context) -> dict:
    time.sleep(0.3)
    return {"independent": True}


# -- input validated by a pydantic model ---------------------------------------------------
class BeadInput(BaseModel):
    task_id: str
    priority: int = 1


validated = roost.workflow("t-validated", input_validator=BeadInput)


@validated.task()
def echo(input: BeadInput, ctx: Context) -> dict:
    return {"task_id": input.task_id, "priority": input.priority, "model": type(input).__name__}


basic = roost.worker("basic", workflows=[chain, diamond, failing, validated], slots=8)

# -- a load test workflow on its own queue ---------------------------------------------------
load = roost.workflow("t-load")


@load.task()
def l1(input: dict, ctx: Context) -> dict:
    return {"i": input["i"]}


@load.task(parents=[l1])
def l2(input: dict, ctx: Context) -> dict:
    return {"i": ctx.task_output(l1)["i"]}


@load.task(parents=[l2])
def l3(input: dict, ctx: Context) -> dict:
    return {"i": ctx.task_output(l2)["i"]}


@load.task(parents=[l3])
def l4(input: dict, ctx: Context) -> dict:
    return {"i": ctx.task_output(l3)["i"], "pid": os.getpid()}


loader = roost.worker("loader", workflows=[load], slots=8)

# -- a task killed mid-flight -------------------------------------------------------------
crash = roost.workflow("t-crash")


@crash.task()
def slow(input: dict, ctx: Context) -> dict:
    """Writes the pid of each process that starts it, then works for a while."""
    marker = Path(input["marker_dir"]) / f"{os.getpid()}.started"
    marker.write_text(ctx.worker_id)
    time.sleep(input.get("seconds", 3))
    return {"pid": os.getpid()}


@crash.task(parents=[slow])
def after_slow(input: dict, ctx: Context) -> dict:
    return {"after": ctx.task_output(slow)["pid"]}


crasher = roost.worker("crasher", workflows=[crash], slots=2)
