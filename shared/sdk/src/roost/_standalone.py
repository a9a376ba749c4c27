"""Standalone tasks (issue #20): ``@roost.task()`` makes a workflow of one task, run and
served like any workflow, whose ``run`` returns that task's output itself, validated into
the function's return annotation when that is a pydantic model or a dataclass."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

from pydantic import BaseModel, TypeAdapter, ValidationError

from roost._durations import Duration
from roost._errors import InvalidInputError
from roost._models import Run, ScheduledRun
from roost._ratelimits import Concurrency
from roost._runs import RunRef
from roost._stream import EventStream
from roost._typed import hints, output_adapter, typed
from roost._workflow import Workflow
from roost._workflow_options import validation_problems
from roost._workflow_runs import Clients
from roost_core.wire import WorkflowDefinition

R = TypeVar("R")


class TaskWorkflow(Workflow):
    """The one-task workflow behind a StandaloneTask. A dataclass input annotation is
    checked and converted as ``input_validator`` does for a pydantic model, both where
    the run is triggered and on the worker."""

    def __init__(self, roost: Clients | None, name: str, input_type: Any, **options: Any) -> None:
        # Set before Workflow.__init__, which checks ``cron_input`` with validate_input.
        self._input_type = input_type if dataclasses.is_dataclass(input_type) else None
        self._adapter: TypeAdapter[Any] | None = (
            TypeAdapter(input_type) if self._input_type is not None else None
        )
        super().__init__(roost, name, **options)

    def definition(self) -> WorkflowDefinition:
        definition = super().definition()
        if self._adapter is not None and definition.input_schema is None:
            schema = self._adapter.json_schema()
            definition = definition.model_copy(update={"input_schema": schema})
        return definition

    def validate_input(self, run_input: Any) -> Any:
        if self._adapter is None or self.input_validator is not None:
            return super().validate_input(run_input)
        try:
            value = self._adapter.validate_python(run_input)
        except ValidationError as exc:
            raise InvalidInputError(
                f"input for task {self.name!r} is invalid: {validation_problems(exc)}"
            ) from None
        return self._adapter.dump_python(value, mode="json")

    def parse_input(self, raw: Any) -> Any:
        if self._adapter is None or self.input_validator is not None:
            return super().parse_input(raw)
        return self._adapter.validate_python(raw)


class TaskRunRef(Generic[R]):
    """A triggered run of a standalone task: ``.id`` now, ``.result()`` (the task's
    output) once it ends. ``.run_ref`` is the plain RunRef (outputs by task name)."""

    def __init__(self, task: StandaloneTask[R], ref: RunRef) -> None:
        self._task = task
        self.run_ref = ref
        self.id = ref.id
        self.workflow = ref.workflow

    def __repr__(self) -> str:
        return f"TaskRunRef(id={self.id!r}, task={self._task.name!r})"

    def get(self) -> Run:
        return self.run_ref.get()

    async def aio_get(self) -> Run:
        return await self.run_ref.aio_get()

    def stream(self, *, after: int | None = None, types: list[str] | None = None) -> EventStream:
        """This run's events, live, ending when the run ends (``for`` or ``async for``)."""
        return self.run_ref.stream(after=after, types=types)

    def aio_stream(
        self, *, after: int | None = None, types: list[str] | None = None
    ) -> EventStream:
        """:meth:`stream`, for ``async for`` (``RunRef.aio_stream``)."""
        return self.run_ref.aio_stream(after=after, types=types)

    def result(self, timeout: float | None = None) -> R:
        """Wait for the run; return the task's output, or raise RunFailedError
        (RunCancelledError, RunTimeoutError) as ``RunRef.result`` does."""
        return self._task.output_of(self.run_ref.result(timeout))

    async def aio_result(self, timeout: float | None = None) -> R:
        """:meth:`result`, awaited."""
        return self._task.output_of(await self.run_ref.aio_result(timeout))


class StandaloneTask(Generic[R]):
    """A workflow of one task, made by ``@roost.task()``. Calling it calls the function
    (handy in unit tests); ``run`` returns the task's output. ``.workflow`` is the
    workflow itself: ``roost.worker(..., workflows=[t])`` serves it."""

    def __init__(
        self,
        roost: Clients | None,
        fn: Callable[..., Any],
        name: str | None = None,
        *,
        input_validator: type[BaseModel] | None = None,
        on_events: Sequence[str] | None = None,
        concurrency: Concurrency | None = None,
        on_crons: Sequence[str] | None = None,
        cron_input: Any = None,
        **policy: Any,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        input_type, self.output_type = hints(fn)
        if input_validator is None and typed(input_type) and issubclass(input_type, BaseModel):
            input_validator = input_type  # the annotation is the model: no need to repeat it
        self.workflow: Workflow = TaskWorkflow(
            roost,
            self.name,
            input_type,
            input_validator=input_validator,
            on_events=on_events,
            concurrency=concurrency,
            on_crons=on_crons,
            cron_input=cron_input,
        )
        self.task = self.workflow.task(self.name, **policy)(fn)
        self._output = output_adapter(fn)

    def __repr__(self) -> str:
        return f"StandaloneTask({self.name!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def output_of(self, outputs: dict[str, Any]) -> R:
        """The task's output among a run's outputs by task name, as the function's
        return annotation when that is a pydantic model or a dataclass."""
        value = outputs.get(self.name)
        if self._output is None:
            return typing.cast(R, value)
        return typing.cast(R, self._output.validate_python(value))

    def register(self) -> str:
        """Register the task's workflow with the api (once per process); its version."""
        return self.workflow.register()

    async def aio_register(self) -> str:
        """:meth:`register`, awaited."""
        return await self.workflow.aio_register()

    @overload
    def run(
        self,
        input: Any = ...,
        *,
        wait_for_result: typing.Literal[True] = ...,
        idempotency_key: str | None = ...,
        timeout: float | None = ...,
        metadata: dict[str, str] | None = ...,
    ) -> R: ...

    @overload
    def run(
        self,
        input: Any = ...,
        *,
        wait_for_result: typing.Literal[False],
        idempotency_key: str | None = ...,
        timeout: float | None = ...,
        metadata: dict[str, str] | None = ...,
    ) -> TaskRunRef[R]: ...

    def run(
        self,
        input: Any = None,
        *,
        wait_for_result: bool = True,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Any:
        """Trigger a run and wait: the task's output (RunFailedError if it failed). With
        ``wait_for_result=False``, a TaskRunRef at once. Options as ``Workflow.run``."""
        ref = self.workflow.run(
            input,
            wait_for_result=False,
            idempotency_key=idempotency_key,
            metadata=metadata,
        )
        task_ref = TaskRunRef(self, ref)
        return task_ref.result(timeout) if wait_for_result else task_ref

    async def aio_run(
        self,
        input: Any = None,
        *,
        wait_for_result: bool = True,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Any:
        """:meth:`run`, awaited: the task's output, or a TaskRunRef."""
        ref = await self.workflow.aio_run(
            input, wait_for_result=False, idempotency_key=idempotency_key, metadata=metadata
        )
        task_ref = TaskRunRef(self, ref)
        return await task_ref.aio_result(timeout) if wait_for_result else task_ref

    def run_many(
        self,
        inputs: Sequence[Any],
        *,
        idempotency_keys: Sequence[str | None] | None = None,
        chunk_size: int = 500,
        metadata: dict[str, str] | None = None,
    ) -> list[TaskRunRef[R]]:
        """One run per input, triggered in bulk (``Workflow.run_many``); their refs in
        input order, whose ``result()`` is the task's output."""
        refs = self.workflow.run_many(
            inputs, idempotency_keys=idempotency_keys, chunk_size=chunk_size, metadata=metadata
        )
        return [TaskRunRef(self, ref) for ref in refs]

    async def aio_run_many(
        self,
        inputs: Sequence[Any],
        *,
        idempotency_keys: Sequence[str | None] | None = None,
        chunk_size: int = 500,
        metadata: dict[str, str] | None = None,
    ) -> list[TaskRunRef[R]]:
        """:meth:`run_many`, awaited."""
        refs = await self.workflow.aio_run_many(
            inputs, idempotency_keys=idempotency_keys, chunk_size=chunk_size, metadata=metadata
        )
        return [TaskRunRef(self, ref) for ref in refs]

    def schedule(
        self,
        input: Any = None,
        *,
        at: datetime | None = None,
        delay: Duration | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ScheduledRun:
        """Run the task once later (``Workflow.schedule``)."""
        return self.workflow.schedule(input, at=at, delay=delay, metadata=metadata)

    async def aio_schedule(
        self,
        input: Any = None,
        *,
        at: datetime | None = None,
        delay: Duration | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ScheduledRun:
        """:meth:`schedule`, awaited."""
        return await self.workflow.aio_schedule(input, at=at, delay=delay, metadata=metadata)


class TaskDecorator:
    """What ``roost.task(...)`` returns: applied to a function, a StandaloneTask whose
    type parameter is the function's return type (awaited, for an async function)."""

    def __init__(self, roost: Clients | None, name: str | None, options: dict[str, Any]) -> None:
        self._roost = roost
        self._name = name
        self._options = options

    @overload
    def __call__(self, fn: Callable[..., Coroutine[Any, Any, R]]) -> StandaloneTask[R]: ...

    @overload
    def __call__(self, fn: Callable[..., R]) -> StandaloneTask[R]: ...

    def __call__(self, fn: Callable[..., Any]) -> StandaloneTask[Any]:
        return StandaloneTask(self._roost, fn, self._name, **self._options)


def workflow_of(served: Workflow | StandaloneTask[Any]) -> Workflow:
    """The workflow a worker serves for ``served``."""
    return served.workflow if isinstance(served, StandaloneTask) else served
