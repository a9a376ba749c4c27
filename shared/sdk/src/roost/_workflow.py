"""Workflow definitions in plain Python: a DAG of decorated task functions (running
them: ``roost._workflow_runs``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from roost import _labels as labels
from roost._durations import Duration
from roost._errors import InvalidDefinitionError, InvalidInputError
from roost._labels import Label
from roost._policy import rate_limit_uses, task_concurrency, task_policy
from roost._ratelimits import Concurrency, RateLimit
from roost._workflow_options import (
    check_options,
    declared_cron_input,
    declared_crons,
    validation_problems,
)
from roost._workflow_runs import Clients, WorkflowRuns
from roost_core import dag
from roost_core.wire import TaskDefinition, WorkflowDefinition

TaskFn = Callable[..., Any]


class Task:
    """A task of a workflow. Calling it calls the function (handy in unit tests)."""

    def __init__(
        self,
        workflow: Workflow,
        name: str,
        fn: TaskFn,
        parents: list[Task],
        policy: dict[str, Any] | None = None,
    ) -> None:
        self.workflow = workflow
        self.name = name
        self.fn = fn
        self.parents = parents
        self.policy = policy or {}  # retry and timeout fields of its TaskDefinition
        self.is_async = inspect.iscoroutinefunction(fn)
        # Declared with durable_task: it gets a DurableContext and may suspend.
        self.durable = False

    def definition(self) -> TaskDefinition:
        return TaskDefinition(name=self.name, parents=[p.name for p in self.parents], **self.policy)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Task({self.workflow.name}.{self.name})"


class Workflow(WorkflowRuns):
    """A named DAG of tasks. Make one with ``roost.workflow(name)``."""

    def __init__(
        self,
        roost: Clients | None,
        name: str,
        input_validator: type[BaseModel] | None = None,
        on_events: Sequence[str] | None = None,
        concurrency: Concurrency | None = None,
        on_crons: Sequence[str] | None = None,
        cron_input: Any = None,
        sticky: Literal["hard", "soft"] | None = None,
        default_priority: int | None = None,
    ) -> None:
        dag.check_name("workflow", name)
        check_options(name, input_validator, on_events, concurrency)
        if sticky not in (None, "hard", "soft"):
            raise InvalidDefinitionError(
                f"workflow {name!r}: sticky is 'hard', 'soft' or None, not {sticky!r}"
            )
        self.sticky = sticky
        if default_priority is not None and default_priority not in (1, 2, 3):
            raise InvalidDefinitionError(
                f"workflow {name!r}: default_priority is 1 (low), 2 or 3 (high),"
                f" not {default_priority!r}"
            )
        self.default_priority = default_priority
        super().__init__(roost)
        self.name = name
        self.input_validator = input_validator
        self.on_events: list[str] = list(on_events or ())
        self.concurrency = concurrency
        self.on_crons = declared_crons(name, on_crons)  # a bad expression fails here
        self.cron_input = declared_cron_input(name, cron_input, self.validate_input)
        self.tasks: dict[str, Task] = {}
        self.on_failure_task: Task | None = None

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, tasks={list(self.tasks)})"

    def task(
        self,
        name: str | None = None,
        *,
        parents: Sequence[Task | str] = (),
        retries: int = 0,
        backoff_factor: float | None = None,
        backoff_max_seconds: float | None = None,
        backoff_initial_seconds: float = 1.0,
        execution_timeout: Duration | None = None,
        schedule_timeout: Duration | None = None,
        rate_limits: Sequence[RateLimit] = (),
        concurrency: Concurrency | Sequence[Concurrency] = (),
        desired_labels: Mapping[str, Label | str | int | float] | None = None,
    ) -> Callable[[TaskFn], Task]:
        """Declare a task. ``parents`` are tasks of this workflow that must succeed first;
        their outputs reach this task through ``ctx.task_output(parent)`` (as the
        parent's return annotation types them, when that is a model or a dataclass).

        ``retries``: attempts after the first; attempt n+1 waits
        ``min(backoff_max_seconds, backoff_initial_seconds * backoff_factor ** (n - 1))``
        seconds (no factor: a fixed ``backoff_initial_seconds``). ``execution_timeout``:
        longest an attempt may run (interrupted, and retried like a failure);
        ``schedule_timeout``: longest it may wait for a worker (then TIMED_OUT). Durations
        are seconds, a timedelta or a string like "10m".

        ``rate_limits``: units of fleet-wide keys (``roost.rate_limits.put``) the task
        takes; it waits, durably and in FIFO order, until they are free.

        ``concurrency``: at most ``max_runs`` attempts of this task at once per group of
        each ``Concurrency`` (``[Concurrency("input.user", max_runs=2),
        Concurrency("'all'", max_runs=8)]``); an attempt starts only when every one of
        its groups has room. A durable task waiting holds none. When a group is full, its
        ``strategy`` decides: the attempt waits its turn (``"group_round_robin"``); it
        ends CANCELLED at once, its error naming the full key (``"cancel_newest"``); or
        the group's oldest attempts are cancelled, stopped on their workers, and it
        starts once their places are free (``"cancel_in_progress"``). A cancelled
        attempt is not retried and its task's descendants never start, as with
        ``roost.runs.cancel_task``.

        ``desired_labels``: what the worker process that runs it should have, by label
        (``{"region": Label("eu", required=True), "memory_gb": Label(32, comparator=">=",
        weight=10)}``; a plain value is a required ``==``). Required ones are never
        broken: the task waits for a live worker that has them (its schedule timeout
        applies, and its placement says why it waits); weighted ones pick the best live
        worker. A run may override them per label (``wf.run(..., desired_labels=)``)."""
        policy = task_policy(
            name,
            retries,
            backoff_factor,
            backoff_max_seconds,
            backoff_initial_seconds,
            execution_timeout,
            schedule_timeout,
        )
        if rate_limits:
            policy["rate_limits"] = rate_limit_uses(name, rate_limits)
        if concurrency:
            policy["concurrency"] = task_concurrency(name, concurrency)
        if desired_labels:
            policy["desired_labels"] = labels.desired_labels(f"task {name!r}", desired_labels)

        def decorate(fn: TaskFn) -> Task:
            task_name = name or fn.__name__
            dag.check_name("task", task_name)
            if task_name in self.tasks:
                raise InvalidDefinitionError(
                    f"workflow {self.name!r} already has a task named {task_name!r}"
                )
            resolved: list[Task] = []
            for parent in parents:
                if isinstance(parent, Task):
                    if parent.workflow is not self:
                        raise InvalidDefinitionError(
                            f"task {task_name!r} of workflow {self.name!r} names parent "
                            f"{parent.name!r} of another workflow ({parent.workflow.name!r})"
                        )
                    resolved.append(parent)
                elif isinstance(parent, str):
                    if parent not in self.tasks:
                        raise InvalidDefinitionError(
                            f"task {task_name!r} of workflow {self.name!r} names an unknown "
                            f"parent {parent!r}; declare parents before their children"
                        )
                    resolved.append(self.tasks[parent])
                else:
                    raise InvalidDefinitionError(
                        f"parent {parent!r} of task {task_name!r} is neither a task nor a name"
                    )
            if len({p.name for p in resolved}) != len(resolved):
                raise InvalidDefinitionError(f"task {task_name!r} lists a parent twice")
            task = Task(self, task_name, fn, resolved, policy)
            self.tasks[task_name] = task
            return task

        return decorate

    def durable_task(
        self,
        name: str | None = None,
        *,
        parents: Sequence[Task | str] = (),
        retries: int = 0,
        backoff_factor: float | None = None,
        backoff_max_seconds: float | None = None,
        backoff_initial_seconds: float = 1.0,
        execution_timeout: Duration | None = None,
        schedule_timeout: Duration | None = None,
        rate_limits: Sequence[RateLimit] = (),
        concurrency: Concurrency | Sequence[Concurrency] = (),
        desired_labels: Mapping[str, Label | str | int | float] | None = None,
    ) -> Callable[[TaskFn], Task]:
        """Declare a durable task (roost._durable): an ``async def`` that receives a
        ``DurableContext``, whose ``ctx.step`` runs side effects once and whose
        ``ctx.sleep_for`` / ``ctx.sleep_until`` suspend it without holding a worker slot;
        it resumes by running again from the top, replaying its recorded durable calls.
        Options as for ``task``.

        It must be an ``async def``, since its durable calls are coroutines to await
        (Hatchet's durable tasks are async too); a sync function is refused here rather
        than failing on its first ``ctx.step``."""
        declare = self.task(
            name,
            parents=parents,
            retries=retries,
            backoff_factor=backoff_factor,
            backoff_max_seconds=backoff_max_seconds,
            backoff_initial_seconds=backoff_initial_seconds,
            execution_timeout=execution_timeout,
            schedule_timeout=schedule_timeout,
            rate_limits=rate_limits,
            concurrency=concurrency,
            desired_labels=desired_labels,
        )

        def decorate(fn: TaskFn) -> Task:
            if not inspect.iscoroutinefunction(fn):
                raise InvalidDefinitionError(
                    f"durable task {name or getattr(fn, '__name__', fn)!r} of workflow "
                    f"{self.name!r} must be an async def (it awaits ctx.step and ctx.sleep_for)"
                )
            task = declare(fn)
            task.durable = True
            return task

        return decorate

    def on_failure(
        self,
        name: str | None = None,
        *,
        retries: int = 0,
        backoff_factor: float | None = None,
        backoff_max_seconds: float | None = None,
        backoff_initial_seconds: float = 1.0,
        execution_timeout: Duration | None = None,
        schedule_timeout: Duration | None = None,
    ) -> Callable[[TaskFn], Task]:
        """Declare the run's failure handler: it runs once, after a run has failed (not
        when it is cancelled), and ``ctx.task_errors()`` says which tasks failed and
        how. Its own options work as for ``task``."""
        policy = task_policy(
            name,
            retries,
            backoff_factor,
            backoff_max_seconds,
            backoff_initial_seconds,
            execution_timeout,
            schedule_timeout,
        )

        def decorate(fn: TaskFn) -> Task:
            handler_name = name or fn.__name__
            dag.check_name("task", handler_name)
            if self.on_failure_task is not None:
                raise InvalidDefinitionError(
                    f"workflow {self.name!r} already has an on_failure handler "
                    f"({self.on_failure_task.name!r})"
                )
            if handler_name in self.tasks:
                raise InvalidDefinitionError(
                    f"workflow {self.name!r} already has a task named {handler_name!r}"
                )
            self.on_failure_task = Task(self, handler_name, fn, [], policy)
            return self.on_failure_task

        return decorate

    def find(self, name: str) -> Task | None:
        """The task (or failure handler) named ``name``."""
        task = self.tasks.get(name)
        if task is None and self.on_failure_task and self.on_failure_task.name == name:
            return self.on_failure_task
        return task

    def definition(self) -> WorkflowDefinition:
        """The definition registered with the api; checked for cycles and names."""
        definition = WorkflowDefinition(
            name=self.name,
            tasks=[t.definition() for t in self.tasks.values()],
            input_schema=self.input_validator.model_json_schema() if self.input_validator else None,
            on_failure=self.on_failure_task.definition() if self.on_failure_task else None,
            on_events=self.on_events,
            concurrency=self.concurrency.definition() if self.concurrency else None,
            on_crons=self.on_crons,
            cron_input=self.cron_input,
            sticky=self.sticky,
            default_priority=self.default_priority,
        )
        dag.validate(definition)
        return definition

    def validate_input(self, run_input: Any) -> Any:
        """Check ``run_input`` against ``input_validator``; return it as JSON."""
        if isinstance(run_input, BaseModel):
            return run_input.model_dump(mode="json")
        if self.input_validator is None:
            return run_input
        try:
            model = self.input_validator.model_validate(run_input)
        except ValidationError as exc:
            raise InvalidInputError(
                f"input for workflow {self.name!r} is invalid: {validation_problems(exc)}"
            ) from None
        return model.model_dump(mode="json")

    def parse_input(self, raw: Any) -> Any:
        """What a task receives as ``input``: the model instance if there is a validator."""
        if self.input_validator is None:
            return raw
        return self.input_validator.model_validate(raw)
