"""Crons (issue #19): ``roost.crons`` starts a workflow at every fire time of a cron
expression; ``roost.workflow(..., on_crons=[...])`` declares them with the workflow.
Each call has an ``aio_`` twin sharing its body and parsing.

```python
roost.workflow("nightly", on_crons=["0 3 * * *"], cron_input={"scope": "all"})
roost.crons.create(wf, "hourly-sync", "@hourly", timezone="Europe/Berlin")
```

Like the other clients, this one only shapes requests: the api checks them and its
errors name the bad field. (A declared expression is checked where the workflow is
defined, by ``roost._workflow_options``.)
"""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from roost._http import ApiClient, shaped
from roost._models import Cron
from roost._targets import Target, input_for, name_of, page_params
from roost._trigger_input import checked_metadata
from roost_core.schedule_models import CronCreate


class Crons:
    """``roost.crons``: crons made at run time (and those workflows declare with
    ``on_crons``): create, list, read, pause, resume, delete."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def create(
        self,
        workflow: Target,
        name: str,
        expression: str,
        *,
        input: Any = None,
        timezone: str = "UTC",
        metadata: dict[str, str] | None = None,
        catch_up: str = "latest",
        paused: bool = False,
    ) -> Cron:
        """A cron starting a run of ``workflow`` (a name, or a workflow defined in code:
        registered first) at every fire time of ``expression`` (five fields, an
        ``@hourly``-style alias, or six with seconds first) in ``timezone`` (IANA).
        ``catch_up`` says what fires for times missed while every scheduler was down:
        ``"latest"`` (one run), ``"all"`` (each, at most 100) or ``"none"``. Each run's
        metadata carries ``roost.cron``, ``roost.cron_id`` and ``roost.fire_at``.
        ConflictError if the workflow has a cron of that ``name``."""
        body = _cron_body(workflow, name, expression, input, timezone, metadata, catch_up, paused)
        if not isinstance(workflow, str):
            workflow.register()
        return Cron.model_validate(self._api.request("POST", "/api/v1/crons", json=body))

    async def aio_create(
        self,
        workflow: Target,
        name: str,
        expression: str,
        *,
        input: Any = None,
        timezone: str = "UTC",
        metadata: dict[str, str] | None = None,
        catch_up: str = "latest",
        paused: bool = False,
    ) -> Cron:
        """:meth:`create`, awaited."""
        body = _cron_body(workflow, name, expression, input, timezone, metadata, catch_up, paused)
        if not isinstance(workflow, str):
            await workflow.aio_register()
        return Cron.model_validate(await self._api.arequest("POST", "/api/v1/crons", json=body))

    def list(self, workflow: Target | None = None) -> builtins.list[Cron]:
        """Every cron (of ``workflow``, if given), oldest first, every page read."""
        found: builtins.list[Cron] = []
        cursor: str | None = None
        while True:
            params = page_params(workflow, None, cursor)
            body = self._api.request("GET", "/api/v1/crons", params=params)
            found.extend(Cron.model_validate(c) for c in body["crons"])
            if (cursor := body["next_cursor"]) is None:
                return found

    async def aio_list(self, workflow: Target | None = None) -> builtins.list[Cron]:
        """:meth:`list`, awaited."""
        found: builtins.list[Cron] = []
        cursor: str | None = None
        while True:
            params = page_params(workflow, None, cursor)
            body = await self._api.arequest("GET", "/api/v1/crons", params=params)
            found.extend(Cron.model_validate(c) for c in body["crons"])
            if (cursor := body["next_cursor"]) is None:
                return found

    def get(self, cron_id: str) -> Cron:
        """The cron with ``recent_runs`` (newest first); NotFoundError if there is none."""
        return Cron.model_validate(self._api.request("GET", _cron_path(cron_id)))

    async def aio_get(self, cron_id: str) -> Cron:
        """:meth:`get`, awaited."""
        return Cron.model_validate(await self._api.arequest("GET", _cron_path(cron_id)))

    def pause(self, cron_id: str) -> Cron:
        """Pause the cron: its fire times pass without runs (and are not caught up)."""
        return Cron.model_validate(self._api.request("POST", _cron_path(cron_id, "/pause")))

    async def aio_pause(self, cron_id: str) -> Cron:
        """:meth:`pause`, awaited."""
        body = await self._api.arequest("POST", _cron_path(cron_id, "/pause"))
        return Cron.model_validate(body)

    def resume(self, cron_id: str) -> Cron:
        """Resume a paused cron from its next fire time after now."""
        return Cron.model_validate(self._api.request("POST", _cron_path(cron_id, "/resume")))

    async def aio_resume(self, cron_id: str) -> Cron:
        """:meth:`resume`, awaited."""
        body = await self._api.arequest("POST", _cron_path(cron_id, "/resume"))
        return Cron.model_validate(body)

    def delete(self, cron_id: str) -> None:
        """Delete a cron made at run time (the runs it started stay). ConflictError for
        one declared by ``on_crons``: drop it there, or pause it."""
        self._api.request("DELETE", _cron_path(cron_id))

    async def aio_delete(self, cron_id: str) -> None:
        """:meth:`delete`, awaited."""
        await self._api.arequest("DELETE", _cron_path(cron_id))


def _cron_body(
    workflow: Target,
    name: str,
    expression: str,
    run_input: Any,
    timezone: str,
    metadata: dict[str, str] | None,
    catch_up: str,
    paused: bool,
) -> dict[str, Any]:
    request = CronCreate.model_construct(
        workflow=name_of(workflow),
        name=name,
        expression=expression,
        timezone=timezone,
        input=input_for(workflow, run_input),
        metadata=checked_metadata(metadata),
        catch_up=catch_up,
        paused=paused,
    )
    return shaped(request)


def _cron_path(cron_id: str, suffix: str = "") -> str:
    return f"/api/v1/crons/{quote(str(cron_id), safe='')}{suffix}"
