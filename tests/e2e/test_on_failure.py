"""A workflow's on_failure handler runs once when a run fails, and only then."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

import roost
from harness import Process, Stack


@pytest.fixture(scope="module")
def handler_worker(stack: Stack, flows: ModuleType) -> Iterator[Process]:
    proc = stack.start_worker(
        "roost_testapps.flows:handler_worker", processes=1, threads=4, name="handler"
    )
    yield proc
    proc.stop()


def test_the_handler_runs_once_after_the_run_fails_and_sees_what_failed(
    flows: ModuleType, handler_worker: Process
) -> None:
    with pytest.raises(roost.RunFailedError) as caught:
        flows.handled.run({"fail": True}, timeout=60)

    run = flows.roost.runs.get(caught.value.run.id)
    assert run.status == roost.RunStatus.FAILED
    assert caught.value.failed_tasks == ["might_fail"]
    handler = run.task("cleanup")
    assert handler.status == roost.TaskStatus.SUCCEEDED
    assert handler.output == {
        "failed": ["might_fail"],
        "types": ["KeyError"],
        "input": {"fail": True},
    }
    assert len(handler.attempts) == 1
    assert run.task("independent_branch").status == roost.TaskStatus.SUCCEEDED
    # The handler started only after every other task had settled.
    others = [t.finished_at for t in run.tasks if t.name != "cleanup"]
    assert handler.started_at is not None and all(f and f <= handler.started_at for f in others)


def test_a_retried_handler_still_sees_what_failed(
    flows: ModuleType, handler_worker: Process
) -> None:
    with pytest.raises(roost.RunFailedError) as caught:
        flows.handled_again.run({}, timeout=60)
    handler = flows.roost.runs.get(caught.value.run.id).task("cleanup_again")
    assert handler.status == roost.TaskStatus.SUCCEEDED
    assert handler.output == {"failed": ["always_breaks"], "attempt": 2}


def test_the_handler_does_not_run_when_the_run_succeeds(
    flows: ModuleType, handler_worker: Process
) -> None:
    ref = flows.handled.run({"fail": False}, wait_for_result=False)
    assert ref.result(timeout=60)["might_fail"] == {"ok": True}
    assert [t.name for t in flows.roost.runs.get(ref.id).tasks] == [
        "might_fail",
        "independent_branch",
    ]


def test_a_handler_with_a_task_name_or_twice_is_rejected_when_declared() -> None:
    wf = roost.Roost(api_url="http://127.0.0.1:1", token="x").workflow("h")

    @wf.task()
    def work(input: dict, ctx: roost.Context) -> None: ...

    with pytest.raises(roost.InvalidDefinitionError, match="already has a task named 'work'"):
        wf.on_failure(name="work")(lambda i, c: None)

    @wf.on_failure()
    def first(input: dict, ctx: roost.Context) -> None: ...

    with pytest.raises(roost.InvalidDefinitionError, match="already has an on_failure handler"):

        @wf.on_failure()
        def second(input: dict, ctx: roost.Context) -> None: ...
