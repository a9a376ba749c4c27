"""Runs scheduled once (issue #19): ``roost.scheduled`` (and ``wf.schedule``) starts a
run later, at a time or after a delay; it can be moved or cancelled until it fires. Each
call has an ``aio_`` twin sharing its body and parsing.

```python
s = wf.schedule({"task_id": "bd-42"}, delay="15m")   # or at=datetime(..., tzinfo=UTC)
roost.scheduled.reschedule(s.id, delay="1h"); roost.scheduled.cancel(s.id)
```

The api checks each request and its errors name the bad field; what can be refused
without asking (a naive ``at``, a delay that is no duration, metadata) is refused
before anything is sent.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any
from urllib.parse import quote

from roost._durations import Duration, seconds
from roost._errors import BadRequestError, RoostError
from roost._http import ApiClient, shaped
from roost._models import ScheduledRun
from roost._targets import Target, input_for, name_of, page_params
from roost._trigger_input import checked_metadata
from roost_core.schedule_models import Reschedule, ScheduleCreate


class ScheduledRuns:
    """``roost.scheduled``: runs to start once, later (``wf.schedule`` makes them):
    create, list, read, move, cancel."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def create(
        self,
        workflow: Target,
        input: Any = None,
        *,
        at: datetime | None = None,
        delay: Duration | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ScheduledRun:
        """A run of ``workflow`` (a name, or a workflow defined in code: registered
        first) to start once: at ``at`` (a datetime with its time zone) or after
        ``delay`` (seconds, a timedelta, or "15m"), exactly one of them. At its time the
        scheduler starts it from the workflow's newest version, with metadata
        ``roost.scheduled_id``; a time missed while every scheduler was down fires on
        recovery."""
        body = _scheduled_body(workflow, input, at, delay, metadata)
        if not isinstance(workflow, str):
            workflow.register()
        return ScheduledRun.model_validate(
            self._api.request("POST", "/api/v1/scheduled", json=body)
        )

    async def aio_create(
        self,
        workflow: Target,
        input: Any = None,
        *,
        at: datetime | None = None,
        delay: Duration | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ScheduledRun:
        """:meth:`create`, awaited."""
        body = _scheduled_body(workflow, input, at, delay, metadata)
        if not isinstance(workflow, str):
            await workflow.aio_register()
        created = await self._api.arequest("POST", "/api/v1/scheduled", json=body)
        return ScheduledRun.model_validate(created)

    def list(
        self, workflow: Target | None = None, status: str | None = None
    ) -> builtins.list[ScheduledRun]:
        """Every scheduled run (of ``workflow``; with ``status`` SCHEDULED, FIRED,
        CANCELLED or FAILED), soonest first, every page read."""
        found: builtins.list[ScheduledRun] = []
        cursor: str | None = None
        while True:
            params = page_params(workflow, status, cursor)
            body = self._api.request("GET", "/api/v1/scheduled", params=params)
            found.extend(ScheduledRun.model_validate(s) for s in body["scheduled"])
            if (cursor := body["next_cursor"]) is None:
                return found

    async def aio_list(
        self, workflow: Target | None = None, status: str | None = None
    ) -> builtins.list[ScheduledRun]:
        """:meth:`list`, awaited."""
        found: builtins.list[ScheduledRun] = []
        cursor: str | None = None
        while True:
            params = page_params(workflow, status, cursor)
            body = await self._api.arequest("GET", "/api/v1/scheduled", params=params)
            found.extend(ScheduledRun.model_validate(s) for s in body["scheduled"])
            if (cursor := body["next_cursor"]) is None:
                return found

    def get(self, scheduled_id: str) -> ScheduledRun:
        """The scheduled run (its ``run_id`` once it has fired); NotFoundError if none."""
        return ScheduledRun.model_validate(self._api.request("GET", _scheduled_path(scheduled_id)))

    async def aio_get(self, scheduled_id: str) -> ScheduledRun:
        """:meth:`get`, awaited."""
        body = await self._api.arequest("GET", _scheduled_path(scheduled_id))
        return ScheduledRun.model_validate(body)

    def reschedule(
        self, scheduled_id: str, at: datetime | None = None, delay: Duration | None = None
    ) -> ScheduledRun:
        """Move a run not yet fired to ``at`` or to ``delay`` from now (exactly one).
        ConflictError if it fired already (naming its run) or was cancelled."""
        body = shaped(Reschedule.model_construct(**_when(at, delay)), exclude_unset=True)
        path = _scheduled_path(scheduled_id)
        return ScheduledRun.model_validate(self._api.request("PATCH", path, json=body))

    async def aio_reschedule(
        self, scheduled_id: str, at: datetime | None = None, delay: Duration | None = None
    ) -> ScheduledRun:
        """:meth:`reschedule`, awaited."""
        body = shaped(Reschedule.model_construct(**_when(at, delay)), exclude_unset=True)
        path = _scheduled_path(scheduled_id)
        return ScheduledRun.model_validate(await self._api.arequest("PATCH", path, json=body))

    def cancel(self, scheduled_id: str) -> ScheduledRun:
        """Cancel a run not yet fired (status CANCELLED). ConflictError if it fired
        already (naming its run) or was cancelled before."""
        body = self._api.request("DELETE", _scheduled_path(scheduled_id))
        return ScheduledRun.model_validate(body)

    async def aio_cancel(self, scheduled_id: str) -> ScheduledRun:
        """:meth:`cancel`, awaited."""
        body = await self._api.arequest("DELETE", _scheduled_path(scheduled_id))
        return ScheduledRun.model_validate(body)


def _scheduled_body(
    workflow: Target,
    run_input: Any,
    at: datetime | None,
    delay: Duration | None,
    metadata: dict[str, str] | None,
) -> dict[str, Any]:
    when = _when(at, delay)  # first: the commonest mistake, named before the input
    request = ScheduleCreate.model_construct(
        workflow=name_of(workflow),
        input=input_for(workflow, run_input),
        metadata=checked_metadata(metadata),
        **when,
    )
    return shaped(request, exclude_unset=True)  # the one of at and delay_seconds given


def _when(at: datetime | None, delay: Duration | None) -> dict[str, Any]:
    """``at`` or ``delay`` as the api takes them, exactly one, checked before sending:
    the api would refuse a naive datetime too, but only here can the error say which
    Python to write instead. The other is left out (the api refuses a null)."""
    if (at is None) == (delay is None):
        raise BadRequestError(
            "give exactly one of at= (a datetime with its time zone) or delay= "
            "(seconds, a timedelta, or a string like '15m')"
        )
    if at is not None:
        if not isinstance(at, datetime):
            raise BadRequestError(f"at={at!r} is not a datetime")
        if at.tzinfo is None or at.utcoffset() is None:
            raise BadRequestError(
                f"at={at.isoformat()!r} has no time zone: give an aware datetime, such as "
                "datetime(2030, 1, 1, 3, tzinfo=UTC) or datetime.now(UTC) + timedelta(hours=1)"
            )
        return {"at": at.isoformat()}
    try:
        delay_seconds = seconds(delay, "delay")
    except RoostError as exc:
        raise BadRequestError(str(exc)) from None
    return {"delay_seconds": delay_seconds}


def _scheduled_path(scheduled_id: str) -> str:
    return f"/api/v1/scheduled/{quote(str(scheduled_id), safe='')}"
