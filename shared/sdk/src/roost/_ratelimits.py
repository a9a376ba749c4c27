"""Rate limits: keys shared by the whole fleet, and the units tasks take of them.

```python
roost.rate_limits.put("opencode-sessions", limit=3)                 # concurrency
roost.rate_limits.put("github-api", limit=100, duration="minute")   # window

@wf.task(rate_limits=[RateLimit("opencode-sessions"), RateLimit("github-api", units=2)])
def process(input, ctx): ...
```
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from pydantic import ValidationError

from roost._errors import InvalidDefinitionError
from roost._http import ApiClient, shaped
from roost._models import RateLimitInfo
from roost_core.api_models import PutRateLimit
from roost_core.wire import RATE_LIMIT_KEY_RE, ConcurrencyDefinition, RateLimitUse

Window = Literal["second", "minute", "hour", "day"]
WINDOWS: dict[str, int] = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_KEY = re.compile(RATE_LIMIT_KEY_RE)


@dataclass(frozen=True)
class RateLimit:
    """``units`` of a rate-limit key a task takes: held while it runs when the key is a
    concurrency limit, counted when it is admitted when the key has a window.

    Name a key created with ``roost.rate_limits.put`` (``RateLimit("github-api")``), or
    compute one per run from its input with a CEL expression, created on first use with
    ``limit`` and ``duration``: ``RateLimit(dynamic_key="input.user_id", limit=10,
    duration="minute")`` (no duration: a concurrency limit per key)."""

    key: str | None = None
    units: int = 1
    dynamic_key: str | None = None
    limit: int | None = None
    duration: Window | None = None

    def __post_init__(self) -> None:
        if self.key is not None and (not isinstance(self.key, str) or not _KEY.match(self.key)):
            raise InvalidDefinitionError(
                f"rate limit key {self.key!r} must be 1-200 characters: letters, digits and _.:/@-"
            )
        if self.duration is not None and self.duration not in WINDOWS:
            raise InvalidDefinitionError(
                f"rate limit duration {self.duration!r} is not one of {', '.join(WINDOWS)}"
            )
        try:
            self.use()
        except ValidationError as exc:
            message = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise InvalidDefinitionError(f"rate limit: {message}") from None

    def use(self) -> RateLimitUse:
        """The wire form, as the task's definition carries it."""
        return RateLimitUse(
            key=self.key,
            dynamic_key=self.dynamic_key,
            units=self.units,
            limit=self.limit,
            window_seconds=WINDOWS[self.duration] if self.duration else None,
        )


@dataclass(frozen=True)
class Concurrency:
    """At most ``max_runs`` runs of a workflow at once per group, the group being the
    value of a CEL ``expression`` over the run's input (``"input.repo"``). A run beyond
    that waits its turn, groups taking turns (``"group_round_robin"``); or the group's
    oldest run is cancelled to make room (``"cancel_in_progress"``); or the new run is
    cancelled (``"cancel_newest"``).

    On a task (``@wf.task(concurrency=...)``) the same applies to the task's attempts
    rather than to runs: at most ``max_runs`` attempts per group; one beyond that waits,
    or is cancelled, or has the group's oldest attempts cancelled to make room."""

    expression: str
    max_runs: int = 1
    strategy: Literal["group_round_robin", "cancel_in_progress", "cancel_newest"] = (
        "group_round_robin"
    )

    def __post_init__(self) -> None:
        try:
            self.definition()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] != "value_error":  # ours name the bad value already
                message += f", not {first['input']!r}"
            raise InvalidDefinitionError(f"concurrency: {where}: {message}") from None

    def definition(self) -> ConcurrencyDefinition:
        return ConcurrencyDefinition(
            expression=self.expression, max_runs=self.max_runs, strategy=self.strategy
        )


class RateLimits:
    """``roost.rate_limits``: create, change and inspect keys (each call has an ``aio_``
    twin for asyncio code)."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def put(self, key: str, limit: int, duration: Window | None = None) -> RateLimitInfo:
        """Create or change ``key``: without ``duration``, a concurrency limit (at most
        ``limit`` units held by running tasks); with one, at most ``limit`` units admitted
        in any window of that length. Takes effect at once."""
        body = shaped(PutRateLimit.model_construct(limit=limit, duration=duration))
        return RateLimitInfo.model_validate(self._api.request("PUT", _path(key), json=body))

    async def aio_put(self, key: str, limit: int, duration: Window | None = None) -> RateLimitInfo:
        """:meth:`put`, awaited."""
        body = shaped(PutRateLimit.model_construct(limit=limit, duration=duration))
        return RateLimitInfo.model_validate(await self._api.arequest("PUT", _path(key), json=body))

    def get(self, key: str) -> RateLimitInfo:
        """The key's limit, window and usage right now; NotFoundError if there is none."""
        return RateLimitInfo.model_validate(self._api.request("GET", _path(key)))

    async def aio_get(self, key: str) -> RateLimitInfo:
        """:meth:`get`, awaited."""
        return RateLimitInfo.model_validate(await self._api.arequest("GET", _path(key)))

    def list(self) -> builtins.list[RateLimitInfo]:
        """Every key: limit, window, units in use and left, tasks waiting."""
        return _infos(self._api.request("GET", "/api/v1/rate-limits"))

    async def aio_list(self) -> builtins.list[RateLimitInfo]:
        """:meth:`list`, awaited."""
        return _infos(await self._api.arequest("GET", "/api/v1/rate-limits"))


def _path(key: str) -> str:
    # A key may hold "/" (and ":" or "@"): quoted whole, it stays one path segment.
    return f"/api/v1/rate-limits/{quote(key, safe='')}"


def _infos(body: dict[str, Any]) -> builtins.list[RateLimitInfo]:
    return [RateLimitInfo.model_validate(r) for r in body["rate_limits"]]
