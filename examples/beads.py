"""The beads task pipeline: check dependencies -> process -> verify -> commit.

Run a worker:   roost worker examples.beads:worker
Trigger a run:  python -m examples.beads   (or `just demo`, which does both)
"""

from __future__ import annotations

import asyncio
import sys

from roost import Context, Roost

roost = Roost()
wf = roost.workflow("task-execution")


@wf.task()
def check_deps(input: dict, ctx: Context) -> dict:
    ctx.log(f"checking the dependencies of {input.get('task_id')}")
    return {"task_id": input.get("task_id"), "deps": ["a", "b"]}


@wf.task(parents=[check_deps])
async def process(input: dict, ctx: Context) -> dict:
    deps = ctx.task_output(check_deps)["deps"]
    for i, dep in enumerate(deps, 1):
        await asyncio.sleep(0.01)  # an async task: e.g. waiting on an agent session
        ctx.progress(i / len(deps), f"processed {dep}")
    ctx.put_stream({"tokens": 512})  # any JSON chunk, for whoever watches the run
    return {"n": len(deps)}


@wf.task(parents=[process])
def verify(input: dict, ctx: Context) -> dict:
    return {"ok": ctx.task_output(process)["n"] == 2}


@wf.task(parents=[verify])
def commit(input: dict, ctx: Context) -> dict:
    return {"committed": ctx.task_output(verify)["ok"], "task_id": input.get("task_id")}


worker = roost.worker("beads-worker", workflows=[wf], slots=8)


def main() -> int:
    task_id = sys.argv[1] if len(sys.argv) > 1 else "bd-42"
    ref = wf.run({"task_id": task_id}, wait_for_result=False)
    print(f"triggered run {ref.id} for {task_id}; its events, live from the gateway:")
    for event in ref.stream():  # ends with the run's final event
        print(f"  #{event.id:<6} {event.type:<15} {event.task or '':<11} {event.data or ''}")
    result = ref.result(timeout=60)
    run = roost.runs.get(ref.id)
    for task in run.tasks:
        took = (
            (task.finished_at - task.started_at).total_seconds() * 1000
            if task.finished_at and task.started_at
            else 0
        )
        print(f"  {task.name:<11} {task.status:<10} {took:6.1f} ms  {result.get(task.name)}")
    print(f"run {run.id}: {run.status}")
    return 0 if run.status == "SUCCEEDED" else 1


if __name__ == "__main__":
    raise SystemExit(main())
