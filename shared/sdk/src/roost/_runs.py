"""Reading and waiting for runs; each call has an ``aio_`` twin for asyncio code."""

from __future__ import annotations

import builtins
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

from roost._errors import RunCancelledError, RunFailedError, RunTimeoutError
from roost._http import ApiClient
from roost._models import Run, RunSummary, RunTrace
from roost._stream import EventStream
from roost_core.statuses import RunStatus

# One long-poll request waits at most this long; the api caps it at 60 s.
_POLL_SECONDS = 25.0


class Runs:
    """``roost.runs``: read runs by id, list them."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def get(self, run_id: str) -> Run:
        """The run with each task's status, attempts, output, error and timings."""
        return Run.model_validate(self._api.request("GET", f"/api/v1/runs/{run_id}"))

    async def aio_get(self, run_id: str) -> Run:
        """:meth:`get`, awaited."""
        return Run.model_validate(await self._api.arequest("GET", f"/api/v1/runs/{run_id}"))

    def cancel(self, run_id: str) -> Run:
        """Cancel a run: queued tasks never start, running ones are interrupted, and the
        run ends CANCELLED. Cancelling a run that already ended changes nothing."""
        return Run.model_validate(self._api.request("POST", f"/api/v1/runs/{run_id}/cancel"))

    async def aio_cancel(self, run_id: str) -> Run:
        """:meth:`cancel`, awaited."""
        body = await self._api.arequest("POST", f"/api/v1/runs/{run_id}/cancel")
        return Run.model_validate(body)

    def cancel_task(self, run_id: str, task: str, reason: str | None = None) -> str:
        """Cancel one task of a run: it is not retried, its descendants never start,
        independent branches go on, and the run ends CANCELLED if no task failed.
        Returns "CANCELLED" (it had not started) or "CANCELLING" (its worker is told to
        stop it and the engine ends it, unless it finishes first: ``get`` tells).
        ConflictError if the run or the task has ended."""
        body = self._api.request("POST", _cancel_task_path(run_id, task), json={"reason": reason})
        return str(body["status"])

    async def aio_cancel_task(self, run_id: str, task: str, reason: str | None = None) -> str:
        """:meth:`cancel_task`, awaited."""
        body = await self._api.arequest(
            "POST", _cancel_task_path(run_id, task), json={"reason": reason}
        )
        return str(body["status"])

    def replay(self, run_id: str) -> Run:
        """Re-run an ended run's failed, timed-out and cancelled tasks and their
        descendants; succeeded tasks keep their outputs and do not run again."""
        return Run.model_validate(self._api.request("POST", f"/api/v1/runs/{run_id}/replay"))

    async def aio_replay(self, run_id: str) -> Run:
        """:meth:`replay`, awaited."""
        body = await self._api.arequest("POST", f"/api/v1/runs/{run_id}/replay")
        return Run.model_validate(body)

    def list(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        meta: dict[str, str] | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        parent_run_id: str | None = None,
    ) -> tuple[list[RunSummary], str | None]:
        """A page of runs, newest first, and the cursor of the next page (or None).
        ``meta`` keeps runs whose metadata has every pair; ``since`` / ``until`` bound
        their creation time (a datetime, or unix seconds); ``parent_run_id`` keeps the
        runs triggered inside that run's tasks (its child runs)."""
        params = _list_params(workflow, status, limit, cursor, meta, since, until, parent_run_id)
        return _page(self._api.request("GET", "/api/v1/runs", params=params))

    async def aio_list(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        meta: dict[str, str] | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        parent_run_id: str | None = None,
    ) -> tuple[builtins.list[RunSummary], str | None]:
        """:meth:`list`, awaited."""
        params = _list_params(workflow, status, limit, cursor, meta, since, until, parent_run_id)
        return _page(await self._api.arequest("GET", "/api/v1/runs", params=params))

    def subscribe(
        self, run_id: str, *, after: int | None = None, types: builtins.list[str] | None = None
    ) -> EventStream:
        """The run's events from the gateway: its whole history (or what follows event
        id ``after``), then live ones, ending with the run's final event. Iterate with
        ``for`` or ``async for``; ``types`` keeps only those (``"task.*"`` works)."""
        params = {"types": ",".join(types)} if types else {}
        return EventStream(
            self._api.settings,
            f"/api/v1/runs/{run_id}/events",
            params=params,
            after=after,
            ends_with_run=True,
        )

    def logs(
        self, run_id: str, *, task: str | None = None, after: int = 0, limit: int = 100
    ) -> tuple[builtins.list[dict[str, Any]], int | None]:
        """A page of the run's log lines (optionally one task's), oldest first, and the
        ``after`` of the next page (or None)."""
        params: dict[str, Any] = {"after": after, "limit": limit}
        if task:
            params["task"] = task
        body = self._api.request("GET", f"/api/v1/runs/{run_id}/logs", params=params)
        return builtins.list(body["logs"]), body["next_after"]

    async def aio_logs(
        self, run_id: str, *, task: str | None = None, after: int = 0, limit: int = 100
    ) -> tuple[builtins.list[dict[str, Any]], int | None]:
        """:meth:`logs`, awaited."""
        params: dict[str, Any] = {"after": after, "limit": limit}
        if task:
            params["task"] = task
        body = await self._api.arequest("GET", f"/api/v1/runs/{run_id}/logs", params=params)
        return builtins.list(body["logs"]), body["next_after"]

    def trace(self, run_id: str) -> RunTrace:
        """The run's trace from Roost's own span store (no collector needed): the
        api's trigger, the scheduler's decisions, each attempt's queue wait and its
        execution, rate-limit admissions and the spans tasks made themselves. A span
        is stored a fraction of a second after it ends."""
        return RunTrace.model_validate(self._api.request("GET", f"/api/v1/runs/{run_id}/trace"))

    async def aio_trace(self, run_id: str) -> RunTrace:
        """:meth:`trace`, awaited."""
        body = await self._api.arequest("GET", f"/api/v1/runs/{run_id}/trace")
        return RunTrace.model_validate(body)

    def cancelled_attempts(self, since: float) -> builtins.list[str]:
        """Task runs whose attempts were cancelled since ``since`` (unix seconds): their
        messages may still sit on a queue, and a worker drops them."""
        body = self._api.request("GET", "/api/v1/cancelled-attempts", params={"since": since})
        return builtins.list(body["task_run_ids"])

    def wait(self, run_id: str, timeout: float | None = None) -> Run:
        """Block until the run ends (long-polling the api) and return it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _poll_seconds(deadline)
            body = self._api.request(
                "GET",
                f"/api/v1/runs/{run_id}",
                params={"wait": round(wait, 3)},
                timeout=wait + 10.0,
            )
            if (run := _ended(run_id, body, deadline, timeout)) is not None:
                return run

    async def aio_wait(self, run_id: str, timeout: float | None = None) -> Run:
        """:meth:`wait`, awaited: the event loop goes on while the api long-polls."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _poll_seconds(deadline)
            body = await self._api.arequest(
                "GET",
                f"/api/v1/runs/{run_id}",
                params={"wait": round(wait, 3)},
                timeout=wait + 10.0,
            )
            if (run := _ended(run_id, body, deadline, timeout)) is not None:
                return run


class RunRef:
    """A triggered run: ``.id`` now, ``.result()`` once it ends."""

    def __init__(self, runs: Runs, run_id: str, workflow: str) -> None:
        self._runs = runs
        self.id = run_id
        self.workflow = workflow

    def __repr__(self) -> str:
        return f"RunRef(id={self.id!r}, workflow={self.workflow!r})"

    def get(self) -> Run:
        return self._runs.get(self.id)

    async def aio_get(self) -> Run:
        return await self._runs.aio_get(self.id)

    def stream(self, *, after: int | None = None, types: list[str] | None = None) -> EventStream:
        """This run's events, live, ending when the run ends (``for`` or ``async for``)."""
        return self._runs.subscribe(self.id, after=after, types=types)

    def aio_stream(
        self, *, after: int | None = None, types: list[str] | None = None
    ) -> EventStream:
        """:meth:`stream`, for ``async for event in ref.aio_stream()``: the same stream
        (opening it is no request, so there is nothing to await), whose ``async for``
        connects, reads and reconnects without blocking the event loop."""
        return self._runs.subscribe(self.id, after=after, types=types)

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the run; return each task's output by task name, or raise
        RunFailedError naming the failed tasks (RunCancelledError, RunTimeoutError)."""
        run = self._runs.wait(self.id, timeout)
        return outcome(run)

    async def aio_result(self, timeout: float | None = None) -> dict[str, Any]:
        """:meth:`result`, awaited."""
        return outcome(await self._runs.aio_wait(self.id, timeout))


def _list_params(
    workflow: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
    meta: dict[str, str] | None,
    since: datetime | float | None,
    until: datetime | float | None,
    parent_run_id: str | None = None,
) -> dict[str, Any]:
    values = {
        "parent_run_id": parent_run_id,
        "workflow": workflow,
        "status": status,
        "limit": limit,
        "cursor": cursor,
        "since": _time(since),
        "until": _time(until),
    }
    params: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
    for key, value in (meta or {}).items():
        params[f"meta.{key}"] = value
    return params


def _page(body: dict[str, Any]) -> tuple[list[RunSummary], str | None]:
    return [RunSummary.model_validate(r) for r in body["runs"]], body["next_cursor"]


def _poll_seconds(deadline: float | None) -> float:
    """How long the next long-poll may wait: at most _POLL_SECONDS, and not past the
    caller's deadline."""
    remaining = _POLL_SECONDS if deadline is None else deadline - time.monotonic()
    return max(0.0, min(_POLL_SECONDS, remaining))


def _ended(run_id: str, body: Any, deadline: float | None, timeout: float | None) -> Run | None:
    """The run, if it has ended; None to poll again; RunTimeoutError past the deadline."""
    run = Run.model_validate(body)
    if run.status.is_final:
        return run
    if deadline is not None and time.monotonic() >= deadline:
        raise RunTimeoutError(f"run {run_id} did not end within {timeout} s (status {run.status})")
    return None


def _time(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(float(value))


def outcome(run: Run) -> dict[str, Any]:
    if run.status == RunStatus.SUCCEEDED:
        return dict(run.output or {})
    if run.status == RunStatus.CANCELLED:
        raise RunCancelledError(run)
    raise RunFailedError(run)


def _cancel_task_path(run_id: str, task: str) -> str:
    return f"/api/v1/runs/{quote(run_id, safe='')}/tasks/{quote(task, safe='')}/cancel"
