"""Standalone tasks (``@roost.task()``, issue #20) on a real worker: ``run`` returns the
task's output typed by its return annotation, sync and async, one by one and in bulk,
and the task's retry policy holds; a child task reads its parents' outputs typed the
same way (``ctx.task_output``); a task run's events reach ``async for``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import ModuleType

import pytest

import roost
from harness import Process, Stack


@pytest.fixture(scope="module")
def standalone_worker(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    proc = stack.start_worker(
        "roost_testapps.flows:standalone", processes=1, threads=4, name="standalone"
    )
    yield proc
    proc.stop()


def test_run_returns_the_tasks_output_as_its_pydantic_model(
    flows: ModuleType, standalone_worker: Process
) -> None:
    greeting = flows.sa_greet.run({"who": "ada"}, timeout=60)

    assert isinstance(greeting, flows.Greeting)
    assert greeting.text == "hello ada"
    assert greeting.pid > 0  # made on the worker, not here
    with pytest.raises(roost.InvalidInputError, match="who"):
        flows.sa_greet.run({}, timeout=60)  # the input model checks it before sending


def test_aio_run_of_an_async_task_returns_its_dataclass(
    flows: ModuleType, standalone_worker: Process
) -> None:
    async def main() -> object:
        try:
            return await flows.sa_add.aio_run(flows.Pair(a=2, b=5), timeout=60)
        finally:
            await flows.roost.aclose()

    assert asyncio.run(main()) == flows.PairSum(total=7, a_was=2)


def test_run_many_refs_resolve_to_each_tasks_typed_output(
    flows: ModuleType, standalone_worker: Process
) -> None:
    refs = flows.sa_add.run_many([{"a": i, "b": 10} for i in range(5)])
    assert all(isinstance(ref, roost.TaskRunRef) for ref in refs)

    results = [ref.result(timeout=60) for ref in refs]

    assert results == [flows.PairSum(total=i + 10, a_was=i) for i in range(5)]
    run = refs[0].get()
    assert [t.name for t in run.tasks] == ["t-sa-add"]  # one task, named as the workflow
    assert run.workflow == "t-sa-add"


def test_a_failed_attempt_is_retried_per_the_tasks_policy(
    flows: ModuleType, standalone_worker: Process
) -> None:
    ref = flows.sa_flaky.run(wait_for_result=False)

    assert ref.result(timeout=60) == {"attempt": 2}
    [task] = ref.get().tasks
    assert task.status == roost.TaskStatus.SUCCEEDED
    assert len(task.attempts) == 2


def test_a_child_reads_its_parents_outputs_as_their_return_annotations(
    flows: ModuleType, standalone_worker: Process
) -> None:
    outputs = flows.typed_parents.run({"steps": ["clone", "test"]}, timeout=60)

    assert outputs["follow_plan"] == {
        "plan": "Plan",  # the parent's pydantic model, rebuilt on the child's worker
        "tally": "Tally",  # an async parent's dataclass
        "by_name": "dict",  # by name: the JSON value
        "made_at": "datetime",
    }
    assert outputs["tally"] == {"count": 2}  # what the run stores is JSON all the same


def test_a_task_runs_events_reach_async_for_until_it_ends(
    flows: ModuleType, standalone_worker: Process
) -> None:
    async def main() -> list[str]:
        try:
            ref = await flows.sa_add.aio_run({"a": 1, "b": 2}, wait_for_result=False)
            return [event.type async for event in ref.aio_stream(types=["task.*", "run.*"])]
        finally:
            await flows.roost.aclose()

    types = asyncio.run(main())

    assert types[0] == "run.queued" and "task.succeeded" in types  # its whole history
    assert types[-1] == "run.succeeded"  # and the stream ends with the run
