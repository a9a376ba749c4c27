"""The client object users start from: ``roost = Roost()``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from roost._approvals_client import Approvals
from roost._crons import Crons
from roost._durations import Duration
from roost._errors import InvalidDefinitionError
from roost._events import Events
from roost._http import ApiClient
from roost._labels import Label
from roost._ratelimits import Concurrency, RateLimit, RateLimits
from roost._runs import Runs
from roost._scheduled import ScheduledRuns
from roost._settings import ClientSettings
from roost._standalone import StandaloneTask, TaskDecorator
from roost._worker import Worker
from roost._workers import Workers
from roost._workflow import Workflow
from roost._workflows import Workflows
from roost_core.wire import LabelValue


class Roost:
    """Entry point of the SDK. Settings come from ROOST_API_URL, ROOST_TOKEN,
    ROOST_BROKER_URL and ROOST_NAMESPACE unless given here."""

    def __init__(self, **settings: Any) -> None:
        self.settings = ClientSettings(**settings)
        self._api: ApiClient | None = None
        self._runs: Runs | None = None
        self._events: Events | None = None
        self._workflows: Workflows | None = None
        self._workers: Workers | None = None
        self._crons: Crons | None = None
        self._scheduled: ScheduledRuns | None = None
        self._approvals: Approvals | None = None

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            self._api = ApiClient(self.settings)
        return self._api

    @property
    def rate_limits(self) -> RateLimits:
        """Create, change and inspect fleet-wide rate-limit keys."""
        return RateLimits(self.api)

    @property
    def runs(self) -> Runs:
        """Read, list and wait for runs."""
        if self._runs is None:
            self._runs = Runs(self.api)
        return self._runs

    @property
    def events(self) -> Events:
        """Push events (which start the workflows whose ``on_events`` match), list them."""
        if self._events is None:
            self._events = Events(self.api)
        return self._events

    @property
    def workflows(self) -> Workflows:
        """Register workflow definitions, list and read them, trigger runs by name."""
        if self._workflows is None:
            self._workflows = Workflows(self.api)
        return self._workflows

    @property
    def workers(self) -> Workers:
        """The fleet's worker processes, from their heartbeats."""
        if self._workers is None:
            self._workers = Workers(self.api)
        return self._workers

    @property
    def crons(self) -> Crons:
        """Crons: create, list, read, pause, resume and delete them."""
        if self._crons is None:
            self._crons = Crons(self.api)
        return self._crons

    @property
    def scheduled(self) -> ScheduledRuns:
        """Runs scheduled once (``wf.schedule``): list, read, reschedule, cancel."""
        if self._scheduled is None:
            self._scheduled = ScheduledRuns(self.api)
        return self._scheduled

    @property
    def approvals(self) -> Approvals:
        """Questions durable tasks asked people (``ctx.wait_for_approval``): list, read,
        approve, reject."""
        if self._approvals is None:
            self._approvals = Approvals(self.api)
        return self._approvals

    def workflow(
        self,
        name: str,
        *,
        input_validator: type[BaseModel] | None = None,
        on_events: Sequence[str] | None = None,
        concurrency: Concurrency | None = None,
        on_crons: Sequence[str] | None = None,
        cron_input: Any = None,
        sticky: Literal["hard", "soft"] | None = None,
        default_priority: int | None = None,
    ) -> Workflow:
        """Define a workflow; add tasks with ``@wf.task(parents=[...])``.

        ``on_events``: event-key patterns (``*`` matches any run of characters); every
        event pushed with a matching key (``roost.events.push(key, data)``) starts a run
        of this workflow, with the event's data as input.

        ``concurrency``: at most ``max_runs`` runs at once per group of runs, the group
        being a CEL expression over the input (``Concurrency("input.repo", max_runs=1)``).

        ``on_crons``: cron expressions in UTC (``"0 3 * * *"``, ``"@hourly"``, six fields
        with seconds first); at each fire time a run of the newest version starts with
        ``cron_input`` (checked against ``input_validator`` here). Registering a version
        makes its ``on_crons`` the workflow's declared crons (``roost.crons.list``).

        ``sticky``: every task of a run goes to the worker process chosen for its first
        task (say, the one holding its git worktree). ``"hard"``: only there; if that
        process is gone (stopped, or silent past the heartbeat timeout), the run's
        waiting tasks fail with StickyWorkerGone. ``"soft"``: there while it is live, has
        a free slot and meets the task's required labels; else to any (matching) worker.

        ``default_priority``: its runs' priority, 1 (low, the default) to 3 (high), when
        a trigger gives none (``wf.run(..., priority=3)``)."""
        return Workflow(
            self,
            name,
            input_validator=input_validator,
            on_events=on_events,
            concurrency=concurrency,
            on_crons=on_crons,
            cron_input=cron_input,
            sticky=sticky,
            default_priority=default_priority,
        )

    def task(
        self,
        name: str | None = None,
        *,
        retries: int = 0,
        backoff_factor: float | None = None,
        backoff_max_seconds: float | None = None,
        backoff_initial_seconds: float = 1.0,
        execution_timeout: Duration | None = None,
        schedule_timeout: Duration | None = None,
        rate_limits: Sequence[RateLimit] = (),
        input_validator: type[BaseModel] | None = None,
        on_events: Sequence[str] | None = None,
        concurrency: Concurrency | None = None,
        on_crons: Sequence[str] | None = None,
        cron_input: Any = None,
        desired_labels: Mapping[str, Label | str | int | float] | None = None,
    ) -> TaskDecorator:
        """A standalone task: a workflow of one task, both named ``name`` (default: the
        function's name). ``t.run(input)`` returns the task's output, validated into the
        function's return annotation when that is a pydantic model or a dataclass; an
        input annotated so is validated the same way. Serve it with
        ``roost.worker(..., workflows=[t])``. Task options work as for ``wf.task``,
        workflow options as for ``roost.workflow``."""
        if callable(name):  # ``@roost.task`` without parentheses: say so, not fail later
            raise InvalidDefinitionError(
                f"write @roost.task() with parentheses (on {getattr(name, '__name__', name)!r})"
            )
        options: dict[str, Any] = {
            "retries": retries,
            "backoff_factor": backoff_factor,
            "backoff_max_seconds": backoff_max_seconds,
            "backoff_initial_seconds": backoff_initial_seconds,
            "execution_timeout": execution_timeout,
            "schedule_timeout": schedule_timeout,
            "rate_limits": rate_limits,
            "input_validator": input_validator,
            "on_events": on_events,
            "concurrency": concurrency,
            "on_crons": on_crons,
            "cron_input": cron_input,
            "desired_labels": desired_labels,
        }
        return TaskDecorator(self, name, options)

    def worker(
        self,
        name: str,
        workflows: Sequence[Workflow | StandaloneTask[Any]],
        slots: int = 8,
        version: str | None = None,
        labels: Mapping[str, LabelValue] | None = None,
    ) -> Worker:
        """A worker serving ``workflows`` (standalone tasks too) with ``slots`` concurrent
        tasks per process.

        ``version``: the application's version, shown with each of its processes in
        ``roost workers list`` and on the dashboard (default: ``ROOST_WORKER_VERSION``).

        ``labels``: what its processes say they are (``{"gpu": "a100", "region": "eu",
        "memory_gb": 64}``): keys as run metadata's, values strings (at most 200
        characters) or finite numbers, at most 32; a bad one raises
        InvalidDefinitionError naming it. Shown with the version;
        ``worker.set_labels(...)`` changes them at run time, in the process it is called
        in. Not yet used to place tasks."""
        return Worker(self, name, workflows, slots=slots, version=version, labels=labels)

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
            self._runs = None
            self._events = None
            self._workflows = None
            self._workers = None
            self._crons = None
            self._scheduled = None
            self._approvals = None

    async def aclose(self) -> None:
        """Close the client's async HTTP connections (those this event loop opened),
        then the blocking ones: ``await roost.aclose()`` before the loop ends."""
        if self._api is not None:
            await self._api.aclose()
        self.close()
