"""Pushing events: each starts a run of every workflow whose ``on_events`` matches."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from roost._errors import BadRequestError
from roost._http import ApiClient, shaped
from roost._models import PushedEvent
from roost_core.api_models import MAX_BULK, BulkEventRequest, EventItem

_FIELDS = {"key", "data", "idempotency_key"}


class Events:
    """``roost.events``: push events, read them back (each call has an ``aio_`` twin
    for asyncio code)."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def push(
        self, key: str, data: Any = None, *, idempotency_key: str | None = None
    ) -> PushedEvent:
        """Push an event. Every workflow whose ``on_events`` has a pattern matching
        ``key`` starts a run of its newest version, with ``data`` as input (checked
        against each one's input model first: one rejection stores nothing). Pushing
        again with the same ``idempotency_key`` returns the first event and starts
        nothing."""
        item = _item(key, data, idempotency_key)
        body = self._api.request("POST", "/api/v1/events", json=shaped(item))
        return PushedEvent.model_validate(body)

    async def aio_push(
        self, key: str, data: Any = None, *, idempotency_key: str | None = None
    ) -> PushedEvent:
        """:meth:`push`, awaited."""
        item = _item(key, data, idempotency_key)
        body = await self._api.arequest("POST", "/api/v1/events", json=shaped(item))
        return PushedEvent.model_validate(body)

    def push_many(
        self, events: Sequence[Mapping[str, Any]], *, chunk_size: int = MAX_BULK
    ) -> builtins.list[PushedEvent]:
        """Push many events, each a dict ``{"key": ..., "data": ..., "idempotency_key":
        ...}`` (only ``key`` is required), in as few requests as possible: one
        transaction per chunk of ``chunk_size`` (at most 1000), all of a chunk's events
        stored or none. Returns the events in the order given."""
        pushed: builtins.list[PushedEvent] = []
        for chunk in _chunks(events, chunk_size):
            body = self._api.request("POST", "/api/v1/events/bulk", json=chunk)
            pushed.extend(PushedEvent.model_validate(e) for e in body["events"])
        return pushed

    async def aio_push_many(
        self, events: Sequence[Mapping[str, Any]], *, chunk_size: int = MAX_BULK
    ) -> builtins.list[PushedEvent]:
        """:meth:`push_many`, awaited (the chunks go one after another, in order)."""
        pushed: builtins.list[PushedEvent] = []
        for chunk in _chunks(events, chunk_size):
            body = await self._api.arequest("POST", "/api/v1/events/bulk", json=chunk)
            pushed.extend(PushedEvent.model_validate(e) for e in body["events"])
        return pushed

    def list(
        self, key: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[builtins.list[PushedEvent], str | None]:
        """A page of pushed events, newest first (only those with exactly ``key`` if
        given), and the cursor of the next page (or None)."""
        params = _list_params(key, limit, cursor)
        return _page(self._api.request("GET", "/api/v1/pushed-events", params=params))

    async def aio_list(
        self, key: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[builtins.list[PushedEvent], str | None]:
        """:meth:`list`, awaited."""
        params = _list_params(key, limit, cursor)
        return _page(await self._api.arequest("GET", "/api/v1/pushed-events", params=params))

    def get(self, event_id: str) -> PushedEvent:
        """The pushed event with the runs it started; NotFoundError if there is none."""
        body = self._api.request("GET", f"/api/v1/pushed-events/{event_id}")
        return PushedEvent.model_validate(body)

    async def aio_get(self, event_id: str) -> PushedEvent:
        """:meth:`get`, awaited."""
        body = await self._api.arequest("GET", f"/api/v1/pushed-events/{event_id}")
        return PushedEvent.model_validate(body)


def _chunks(events: Sequence[Mapping[str, Any]], chunk_size: int) -> builtins.list[dict[str, Any]]:
    """The bodies of a bulk push, one per chunk: every event is checked before
    anything is sent, so a bad one (its index named) pushes none."""
    if not 1 <= chunk_size <= MAX_BULK:
        raise BadRequestError(f"chunk_size must be between 1 and {MAX_BULK}, not {chunk_size}")
    items: builtins.list[EventItem] = []
    for index, event in enumerate(events):
        if not isinstance(event, Mapping) or "key" not in event:
            raise BadRequestError(
                f"events[{index}] must be a dict with a 'key' (and optionally 'data' and "
                f"'idempotency_key'), not {event!r}"
            )
        unknown = set(event) - _FIELDS
        if unknown:
            raise BadRequestError(
                f"events[{index}] has unknown field(s) {', '.join(sorted(unknown))}: "
                "use key, data and idempotency_key"
            )
        items.append(_item(event["key"], event.get("data"), event.get("idempotency_key")))
    return [
        shaped(BulkEventRequest.model_construct(events=items[start : start + chunk_size]))
        for start in range(0, len(items), chunk_size)
    ]


def _list_params(key: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if key is not None:
        params["key"] = key
    if cursor is not None:
        params["cursor"] = cursor
    return params


def _page(body: dict[str, Any]) -> tuple[builtins.list[PushedEvent], str | None]:
    return [PushedEvent.model_validate(e) for e in body["events"]], body["next_cursor"]


def _item(key: Any, data: Any, idempotency_key: Any) -> EventItem:
    return EventItem.model_construct(
        key=key, data={} if data is None else data, idempotency_key=idempotency_key
    )
