"""Workflows over HTTP: register definitions, read them, trigger their runs."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from roost._http import ApiClient, shaped
from roost._models import Run
from roost._notices import Notices
from roost_core.api_models import BulkItem, BulkTriggerRequest, ParentRef, TriggerRequest
from roost_core.api_shapes import AcceptedRun
from roost_core.wire import WorkflowDefinition


class Workflows:
    """``roost.workflows``: register workflow definitions, list and read them, and
    trigger runs by workflow name (``Workflow.run`` and ``run_many`` go through here).
    A trigger of a workflow no live worker serves still creates its runs, and warns
    with a RoostWarning naming it (once a minute per workflow: roost._notices)."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api
        self._notices = Notices()

    def register(self, definition: WorkflowDefinition) -> str:
        """Register ``definition`` (a new version only if it changed); return its version."""
        body = self._api.request(
            "POST", "/api/v1/workflows", json=definition.model_dump(mode="json")
        )
        return str(body["version"])

    async def aio_register(self, definition: WorkflowDefinition) -> str:
        """:meth:`register`, awaited."""
        body = await self._api.arequest(
            "POST", "/api/v1/workflows", json=definition.model_dump(mode="json")
        )
        return str(body["version"])

    def list(self) -> builtins.list[dict[str, Any]]:
        """Every workflow, with its newest version."""
        body = self._api.request("GET", "/api/v1/workflows")
        return builtins.list(body["workflows"])

    def get(self, name: str, version: str | None = None) -> dict[str, Any]:
        """The definition of ``name``'s newest version (or of ``version``)."""
        params = {"version": version} if version is not None else None
        body: dict[str, Any] = self._api.request(
            "GET", f"/api/v1/workflows/{quote(name, safe='')}", params=params
        )
        return body

    async def aio_list(self) -> builtins.list[dict[str, Any]]:
        """:meth:`list`, awaited."""
        body = await self._api.arequest("GET", "/api/v1/workflows")
        return builtins.list(body["workflows"])

    async def aio_get(self, name: str, version: str | None = None) -> dict[str, Any]:
        """:meth:`get`, awaited."""
        params = {"version": version} if version is not None else None
        body: dict[str, Any] = await self._api.arequest(
            "GET", f"/api/v1/workflows/{quote(name, safe='')}", params=params
        )
        return body

    def trigger(
        self,
        name: str,
        input: Any,
        *,
        idempotency_key: str | None = None,
        metadata: dict[str, str] | None = None,
        version: str | None = None,
        parent: ParentRef | None = None,
        desired_labels: dict[str, Any] | None = None,
        priority: int | None = None,
        respond_async: bool = False,
    ) -> Run | AcceptedRun:
        """Start one run of workflow ``name`` (of ``version``, or its newest); return it
        as created (or the earlier run with the same ``idempotency_key``). The input is
        sent as given: the api checks it against the workflow's input model. ``parent``:
        the task it is a child run of (roost._children). ``desired_labels``: the run's
        override of its tasks' desired labels (JSON, as roost._labels makes it).
        ``respond_async``: return once the trigger is durable in RabbitMQ, the run
        accepted and created by the scheduler moments later (the api may still create it
        at once: with an idempotency key, a parent, or named rate limits)."""
        body = _trigger_body(
            input, idempotency_key, metadata, version, parent, desired_labels, priority
        )
        created = self._api.request(
            "POST", f"/api/v1/workflows/{name}/runs", json=body, headers=_prefer(respond_async)
        )
        self._notices.raise_from(name, created)
        return _triggered(created)

    async def aio_trigger(
        self,
        name: str,
        input: Any,
        *,
        idempotency_key: str | None = None,
        metadata: dict[str, str] | None = None,
        version: str | None = None,
        parent: ParentRef | None = None,
        desired_labels: dict[str, Any] | None = None,
        priority: int | None = None,
        respond_async: bool = False,
    ) -> Run | AcceptedRun:
        """:meth:`trigger`, awaited. Concurrent triggers of one workflow share the api's
        transactions (its group commit), so ``asyncio.gather`` scales."""
        body = _trigger_body(
            input, idempotency_key, metadata, version, parent, desired_labels, priority
        )
        created = await self._api.arequest(
            "POST", f"/api/v1/workflows/{name}/runs", json=body, headers=_prefer(respond_async)
        )
        self._notices.raise_from(name, created)
        return _triggered(created)

    def trigger_many(
        self, name: str, runs: Sequence[BulkItem], *, version: str | None, chunk_size: int
    ) -> builtins.list[str]:
        """Start one run per item, one request (and transaction) per chunk of
        ``chunk_size``; return the run ids in order (an idempotent repeat gives the
        earlier run's id)."""
        ids: builtins.list[str] = []
        for start in range(0, len(runs), chunk_size):
            chunk = builtins.list(runs[start : start + chunk_size])
            request = BulkTriggerRequest.model_construct(runs=chunk, version=version)
            body = self._api.request(
                "POST",
                f"/api/v1/workflows/{name}/runs/bulk",
                json=shaped(request, exclude_unset=True),
            )
            self._notices.raise_from(name, body)
            ids.extend(str(r["id"]) for r in body["runs"])
        return ids

    async def aio_trigger_many(
        self, name: str, runs: Sequence[BulkItem], *, version: str | None, chunk_size: int
    ) -> builtins.list[str]:
        """:meth:`trigger_many`, awaited (the chunks go one after another, in order)."""
        ids: builtins.list[str] = []
        for start in range(0, len(runs), chunk_size):
            chunk = builtins.list(runs[start : start + chunk_size])
            request = BulkTriggerRequest.model_construct(runs=chunk, version=version)
            body = await self._api.arequest(
                "POST",
                f"/api/v1/workflows/{name}/runs/bulk",
                json=shaped(request, exclude_unset=True),
            )
            self._notices.raise_from(name, body)
            ids.extend(str(r["id"]) for r in body["runs"])
        return ids


def _trigger_body(
    input: Any,
    idempotency_key: str | None,
    metadata: dict[str, str] | None,
    version: str | None,
    parent: ParentRef | None = None,
    desired_labels: dict[str, Any] | None = None,
    priority: int | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "input": input,
        "idempotency_key": idempotency_key,
        "metadata": metadata or {},
    }
    if version is not None:  # no version: the api picks the newest
        fields["version"] = version
    if parent is not None:
        fields["parent"] = parent
    if desired_labels:
        fields["desired_labels"] = desired_labels
    if priority is not None:
        fields["priority"] = priority
    return shaped(TriggerRequest.model_construct(**fields), exclude_unset=True)


def _prefer(respond_async: bool) -> dict[str, str] | None:
    """RFC 7240's way to ask for an answer before the work is done."""
    return {"Prefer": "respond-async"} if respond_async else None


def _triggered(body: dict[str, Any]) -> Run | AcceptedRun:
    """The run as created (201, or 200 for an idempotency key's earlier run), or as
    accepted (202: a run the scheduler creates moments later)."""
    # An accepted run has no row yet, so no created_at.
    return Run.model_validate(body) if "created_at" in body else AcceptedRun.model_validate(body)
