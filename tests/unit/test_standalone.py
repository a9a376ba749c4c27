"""Standalone tasks (``@roost.task()``, issue #20): a workflow of one task whose result is
the task's output, typed by the function's return annotation. No api: the definition,
the output conversion and the worker's side of an attempt are checked in memory."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

import roost
from roost import Concurrency, Context, RateLimit, Roost, StandaloneTask
from roost._attempt import AttemptRunner
from roost._outcomes import Outcomes
from roost._reporter import Pending
from roost._standalone import workflow_of
from roost_core import topology as topo


class Greeting(BaseModel):
    text: str
    at: datetime


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Sum:
    total: int
    when: datetime


class Bead(BaseModel):
    task_id: str
    priority: int = 1


@pytest.fixture
def client() -> Roost:
    return Roost(api_url="http://127.0.0.1:1", token="unused")


def test_calling_it_calls_the_function_sync_and_async(client: Roost) -> None:
    @client.task()
    def double(input: dict, ctx: Context) -> dict:
        return {"n": input["n"] * 2}

    @client.task()
    async def triple(input: dict, ctx: Context) -> dict:
        return {"n": input["n"] * 3}

    assert isinstance(double, StandaloneTask)
    assert double({"n": 2}, None) == {"n": 4}
    assert asyncio.run(triple({"n": 2}, None)) == {"n": 6}
    assert triple.task.is_async and not double.task.is_async


def test_it_defines_a_workflow_of_one_task_both_named_after_it(client: Roost) -> None:
    @client.task()
    def send_mail(input: dict, ctx: Context) -> None: ...

    @client.task(name="resize:image")
    def resize(input: dict, ctx: Context) -> None: ...

    for task, name in ((send_mail, "send_mail"), (resize, "resize:image")):
        definition = task.workflow.definition()
        assert task.name == definition.name == name
        assert [t.name for t in definition.tasks] == [name]
        assert definition.tasks[0].parents == []


def test_task_and_workflow_options_reach_the_definition(client: Roost) -> None:
    @client.task(
        name="charge",
        retries=3,
        backoff_factor=2.0,
        backoff_max_seconds=30,
        backoff_initial_seconds=0.5,
        execution_timeout="2m",
        schedule_timeout=10,
        rate_limits=[RateLimit("stripe", units=2)],
        concurrency=Concurrency("input.user", max_runs=1),
        on_events=["order:*"],
        on_crons=["@hourly"],
        cron_input={"user": "cron"},
    )
    def charge(input: dict, ctx: Context) -> None: ...

    definition = charge.workflow.definition()
    [task] = definition.tasks
    assert (task.retries, task.backoff_factor, task.backoff_max_seconds) == (3, 2.0, 30)
    assert task.backoff_initial_seconds == 0.5
    assert (task.execution_timeout_seconds, task.schedule_timeout_seconds) == (120, 10)
    assert [(r.key, r.units) for r in task.rate_limits] == [("stripe", 2)]
    assert definition.concurrency is not None
    assert definition.concurrency.expression == "input.user"
    assert (definition.on_events, definition.on_crons) == (["order:*"], ["0 * * * *"])
    assert definition.cron_input == {"user": "cron"}


def test_bad_names_and_options_raise_where_it_is_declared(client: Roost) -> None:
    with pytest.raises(roost.InvalidDefinitionError, match="invalid"):

        @client.task(name="no spaces")
        def spaced(input: dict, ctx: Context) -> None: ...

    with pytest.raises(roost.InvalidDefinitionError, match="parentheses"):

        @client.task  # type: ignore[arg-type]
        def bare(input: dict, ctx: Context) -> None: ...

    with pytest.raises(roost.InvalidDefinitionError, match="retries"):

        @client.task(retries=-1)
        def negative(input: dict, ctx: Context) -> None: ...


def test_a_worker_serves_a_standalone_task_as_its_workflow(client: Roost) -> None:
    @client.task()
    def served(input: dict, ctx: Context) -> None: ...

    wf = client.workflow("plain")

    @wf.task()
    def step(input: dict, ctx: Context) -> None: ...

    worker = client.worker("w", workflows=[served, wf])
    assert worker.workflows == {"served": served.workflow, "plain": wf}
    assert workflow_of(served) is served.workflow and workflow_of(wf) is wf


def test_the_output_is_validated_into_a_model_or_dataclass_return_annotation(
    client: Roost,
) -> None:
    @client.task()
    def greet(input: dict, ctx: Context) -> Greeting:
        raise NotImplementedError

    @client.task()
    async def add(input: Point, ctx: Context) -> Sum:
        raise NotImplementedError

    @client.task()
    def untyped(input: dict, ctx: Context) -> dict:
        raise NotImplementedError

    # What a run's outputs by task name hold: the JSON the worker reported.
    greeting = greet.output_of({"greet": {"text": "hi", "at": "2026-01-02T03:04:05Z"}})
    assert greeting == Greeting(text="hi", at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    total = add.output_of({"add": {"total": 3, "when": "2026-01-02T03:04:05Z"}})
    assert isinstance(total, Sum) and total.total == 3 and total.when.year == 2026
    assert untyped.output_of({"untyped": {"any": ["json"]}}) == {"any": ["json"]}


def test_a_model_input_annotation_becomes_the_input_validator(client: Roost) -> None:
    @client.task()
    def take(input: Bead, ctx: Context) -> None: ...

    assert take.workflow.input_validator is Bead
    assert take.workflow.validate_input({"task_id": "bd-1"}) == {"task_id": "bd-1", "priority": 1}
    with pytest.raises(roost.InvalidInputError, match="task_id"):
        take.workflow.validate_input({})


def test_a_dataclass_input_is_checked_when_triggered_and_built_on_the_worker(
    client: Roost,
) -> None:
    @client.task()
    def plot(input: Point, ctx: Context) -> None: ...

    wf = plot.workflow
    assert wf.validate_input(Point(1, 2)) == {"x": 1, "y": 2}
    assert wf.validate_input({"x": "3", "y": 4}) == {"x": 3, "y": 4}
    with pytest.raises(roost.InvalidInputError, match="y"):
        wf.validate_input({"x": 1})
    assert wf.parse_input({"x": 1, "y": 2}) == Point(1, 2)
    schema = wf.definition().input_schema
    assert schema is not None and set(schema["required"]) == {"x", "y"}


class FakeReports:
    """The reports of an attempt (roost._outcomes' AttemptReports and Reporter), kept."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def result(self, key: str, report: Any) -> None:
        self.sent.append((key, report))

    def started_now(self, started: Any) -> None:
        self.sent.append(("started_now", started))

    def emit(self, *args: Any) -> None: ...

    def schedule(self, message: Any) -> Pending:
        return Pending()


def _execute(task: StandaloneTask[Any], input: Any) -> Any:
    """Run one attempt of ``task`` as a worker does; the output it reports."""
    reports = FakeReports()
    runner = AttemptRunner(
        "w",
        {task.name: task.workflow},
        lambda: "w@h:1",
        topo.Topology("test"),
        [Outcomes(reports, reports)],  # type: ignore[arg-type]
    )
    base = {"run_id": "r1", "task_run_id": "tr1", "workflow": task.name, "task": task.name}
    runner.execute({**base, "attempt": 1, "input": input})
    [*_, (key, report)] = reports.sent
    assert key == topo.TASK_SUCCEEDED, report
    return report.output


def test_the_worker_reports_a_returned_model_or_dataclass_as_json(client: Roost) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    @client.task()
    def greet(input: Bead, ctx: Context) -> Greeting:
        return Greeting(text=f"hi {input.task_id}", at=at)

    @client.task()
    def add(input: Point, ctx: Context) -> Sum:
        assert isinstance(input, Point)  # built from the JSON input
        return Sum(total=input.x + input.y, when=at)

    greeted = _execute(greet, {"task_id": "bd-9"})
    assert greeted == {"text": "hi bd-9", "at": "2026-01-02T03:04:05Z"}
    assert greet.output_of({"greet": greeted}) == Greeting(text="hi bd-9", at=at)
    added = _execute(add, {"x": 1, "y": 2})
    assert added == {"total": 3, "when": "2026-01-02T03:04:05Z"}
    assert add.output_of({"add": added}) == Sum(3, at)
