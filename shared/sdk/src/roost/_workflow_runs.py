"""Starting runs of a workflow defined in code: now (one or many, blocking or awaited)
or once, later. Each registers the definition first (once per process) and checks the
input against the workflow's model before anything is sent. ``Workflow`` inherits these
methods, so that its own module (``roost._workflow``) keeps to the definition: tasks,
their DAG, the input model."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

from roost import _children as children
from roost import _durable_children as durable_children
from roost import _task_logs as task_logs
from roost._durations import Duration
from roost._errors import InvalidDefinitionError
from roost._labels import Label, desired_labels
from roost._models import ScheduledRun
from roost._runs import RunRef, Runs, outcome
from roost._scheduled import ScheduledRuns
from roost._settings import ClientSettings
from roost._trigger_input import bulk_items, checked_metadata, checked_priority
from roost._workflows import Workflows
from roost_core.wire import WorkflowDefinition

if TYPE_CHECKING:
    from roost._durable import DurableContext


class Clients(Protocol):
    """The clients a bound workflow triggers through (a ``Roost`` has them)."""

    @property
    def runs(self) -> Runs: ...

    @property
    def workflows(self) -> Workflows: ...

    @property
    def scheduled(self) -> ScheduledRuns: ...

    @property
    def settings(self) -> ClientSettings: ...


class WorkflowRuns:
    """The run and schedule methods of ``Workflow``, through the clients it is bound
    to; ``definition`` and ``validate_input`` are the workflow's own."""

    name: str

    def __init__(self, roost: Clients | None) -> None:
        self._roost = roost
        self._registered: str | None = None
        self._lock = threading.Lock()

    def definition(self) -> WorkflowDefinition:
        """The definition registered with the api (``Workflow`` builds it)."""
        raise NotImplementedError

    def validate_input(self, run_input: Any) -> Any:
        """``run_input`` as sent, checked (``Workflow`` checks it against its model)."""
        raise NotImplementedError

    def _client(self) -> Clients:
        if self._roost is None:
            raise InvalidDefinitionError(f"workflow {self.name!r} is not bound to a Roost client")
        return self._roost

    def _run_labels(
        self, labels: Mapping[str, Label | str | int | float] | None
    ) -> dict[str, Any] | None:
        """A run's override of its tasks' desired labels, checked (InvalidDefinitionError
        naming a bad one) before anything is sent."""
        if not labels:
            return None
        return desired_labels(f"run of workflow {self.name!r}", labels)

    def register(self) -> str:
        """Register this definition with the api (once per process); return its version."""
        with self._lock:
            if self._registered is None:
                self._registered = self._client().workflows.register(self.definition())
            return self._registered

    @overload
    def run(
        self,
        input: Any = ...,
        *,
        wait_for_result: Literal[True] = ...,
        idempotency_key: str | None = ...,
        timeout: float | None = ...,
        metadata: dict[str, str] | None = ...,
        key: str | None = ...,
        desired_labels: Mapping[str, Label | str | int | float] | None = ...,
        priority: int | None = ...,
    ) -> dict[str, Any]: ...

    @overload
    def run(
        self,
        input: Any = ...,
        *,
        wait_for_result: Literal[False],
        idempotency_key: str | None = ...,
        timeout: float | None = ...,
        metadata: dict[str, str] | None = ...,
        key: str | None = ...,
        desired_labels: Mapping[str, Label | str | int | float] | None = ...,
        priority: int | None = ...,
    ) -> RunRef: ...

    def run(
        self,
        input: Any = None,
        *,
        wait_for_result: bool = True,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        metadata: dict[str, str] | None = None,
        key: str | None = None,
        desired_labels: Mapping[str, Label | str | int | float] | None = None,
        priority: int | None = None,
    ) -> Any:
        """Trigger a run. Waits and returns each task's output by name (raising
        RunFailedError naming the failed tasks), or with ``wait_for_result=False``
        returns a RunRef at once. ``metadata`` (string pairs such as
        ``{"repo": "beads"}``) is kept with the run to find it by later.

        Inside a task, the run is a *child run* of that task: linked to it, cancelled
        with its run, and given its run's metadata unless ``metadata`` is given. ``key``
        (default: its number among the runs this attempt triggered) makes it idempotent:
        a retried task triggering with the same key gets the same run back.

        ``desired_labels``: overrides its tasks' desired labels, label by label
        (``{"region": Label("us", required=True)}``; see ``wf.task``). ``priority``: 1
        (low) to 3 (high); its tasks go ahead of lower ones on their queues, low ones
        aging so that they never wait forever (default: the workflow's
        ``default_priority``, else 1)."""
        roost = self._client()
        payload = self.validate_input({} if input is None else input)
        meta = checked_metadata(metadata)
        wanted = self._run_labels(desired_labels)
        checked_priority(priority)
        parent = children.parent_ref(key, f"{self.name}.run")
        version = self.register()
        created = roost.workflows.trigger(
            self.name,
            payload,
            idempotency_key=idempotency_key,
            metadata=meta,
            version=version,
            parent=parent,
            desired_labels=wanted,
            priority=priority,
            respond_async=not wait_for_result and roost.settings.respond_async,
        )
        ref = RunRef(roost.runs, created.id, self.name)
        if not wait_for_result:
            return ref
        return outcome(roost.runs.wait(ref.id, timeout))

    def run_many(
        self,
        inputs: Sequence[Any],
        *,
        idempotency_keys: Sequence[str | None] | None = None,
        chunk_size: int = 500,
        metadata: dict[str, str] | None = None,
        keys: Sequence[str] | None = None,
        priority: int | None = None,
        desired_labels: Mapping[str, Label | str | int | float] | None = None,
    ) -> list[RunRef]:
        """Trigger one run per input with as few requests as possible (one transaction per
        chunk of ``chunk_size``); return their RunRefs in input order. Every input is
        validated before anything is sent. Wait with ``ref.result()`` on each. Inside a
        task they are child runs (see :meth:`run`), ``keys`` one per input."""
        roost = self._client()
        parents = children.parent_refs(keys, len(inputs), f"{self.name}.run_many")
        items = bulk_items(
            self.validate_input,
            inputs,
            idempotency_keys,
            chunk_size,
            metadata,
            parents,
            priority,
            self._run_labels(desired_labels),
        )
        version = self.register()
        ids = roost.workflows.trigger_many(self.name, items, version=version, chunk_size=chunk_size)
        return [RunRef(roost.runs, run_id, self.name) for run_id in ids]

    async def aio_register(self) -> str:
        """:meth:`register`, awaited (two first calls at once may both register: the
        api answers both with the same version)."""
        if self._registered is None:
            self._registered = await self._client().workflows.aio_register(self.definition())
        return self._registered

    async def aio_run(
        self,
        input: Any = None,
        *,
        wait_for_result: bool = True,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        metadata: dict[str, str] | None = None,
        key: str | None = None,
        desired_labels: Mapping[str, Label | str | int | float] | None = None,
        priority: int | None = None,
    ) -> Any:
        """:meth:`run`, awaited: each task's output by name, or with
        ``wait_for_result=False`` a RunRef (``await ref.aio_result()``). Concurrent
        ``aio_run`` calls share the api's transactions (its group commit)."""
        durable = _durable_context()
        if durable is not None:  # a durable call: triggered once, awaited holding no slot
            keys = None if key is None else [key]
            [ref] = await durable_children.spawn(
                durable,
                self,
                [input],
                keys,
                metadata,
                checked_priority(priority),
                self._run_labels(desired_labels),
            )
            if not wait_for_result:
                return ref
            [outputs] = await durable.wait_for_runs([ref])
            return outputs
        roost = self._client()
        payload = self.validate_input({} if input is None else input)
        meta = checked_metadata(metadata)
        wanted = self._run_labels(desired_labels)
        checked_priority(priority)
        parent = children.parent_ref(key, f"{self.name}.aio_run")
        version = await self.aio_register()
        created = await roost.workflows.aio_trigger(
            self.name,
            payload,
            idempotency_key=idempotency_key,
            metadata=meta,
            version=version,
            parent=parent,
            desired_labels=wanted,
            priority=priority,
            respond_async=not wait_for_result and roost.settings.respond_async,
        )
        ref = RunRef(roost.runs, created.id, self.name)
        if not wait_for_result:
            return ref
        return outcome(await roost.runs.aio_wait(ref.id, timeout))

    async def aio_run_many(
        self,
        inputs: Sequence[Any],
        *,
        idempotency_keys: Sequence[str | None] | None = None,
        chunk_size: int = 500,
        metadata: dict[str, str] | None = None,
        keys: Sequence[str] | None = None,
        priority: int | None = None,
        desired_labels: Mapping[str, Label | str | int | float] | None = None,
    ) -> list[RunRef]:
        """:meth:`run_many`, awaited. In a durable task, a durable call: the runs are
        triggered once (``ctx.wait_for_runs(refs)`` waits for them holding no slot)."""
        durable = _durable_context()
        if durable is not None:
            return await durable_children.spawn(
                durable,
                self,
                list(inputs),
                keys,
                metadata,
                checked_priority(priority),
                self._run_labels(desired_labels),
            )
        roost = self._client()
        parents = children.parent_refs(keys, len(inputs), f"{self.name}.aio_run_many")
        items = bulk_items(
            self.validate_input,
            inputs,
            idempotency_keys,
            chunk_size,
            metadata,
            parents,
            priority,
            self._run_labels(desired_labels),
        )
        version = await self.aio_register()
        ids = await roost.workflows.aio_trigger_many(
            self.name, items, version=version, chunk_size=chunk_size
        )
        return [RunRef(roost.runs, run_id, self.name) for run_id in ids]

    def schedule(
        self,
        input: Any = None,
        *,
        at: datetime | None = None,
        delay: Duration | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ScheduledRun:
        """Start one run later, at ``at`` (a datetime with its zone) or after ``delay``
        (seconds, a timedelta, "15m"): exactly one. Registers the workflow first; the run
        has metadata ``roost.scheduled_id``. Move or cancel it with ``roost.scheduled``."""
        scheduled = self._client().scheduled
        return scheduled.create(self, input, at=at, delay=delay, metadata=metadata)

    async def aio_schedule(
        self,
        input: Any = None,
        *,
        at: datetime | None = None,
        delay: Duration | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ScheduledRun:
        """:meth:`schedule`, awaited."""
        scheduled = self._client().scheduled
        return await scheduled.aio_create(self, input, at=at, delay=delay, metadata=metadata)


def _durable_context() -> DurableContext | None:
    """The durable task running here, if one is: its triggers are durable calls."""
    from roost._durable import DurableContext  # imports this module's neighbours

    ctx = task_logs.CURRENT.get()
    return ctx if isinstance(ctx, DurableContext) else None
