"""A task's options as its TaskDefinition carries them, checked when it is declared, with
errors that name the bad option."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from roost._durations import Duration, seconds
from roost._errors import InvalidDefinitionError
from roost._ratelimits import Concurrency, RateLimit


def rate_limit_uses(name: str | None, limits: Sequence[RateLimit]) -> list[dict[str, Any]]:
    label = f"task {name!r}" if name else "task"
    uses: list[dict[str, Any]] = []
    seen: set[str] = set()
    for limit in limits:
        if not isinstance(limit, RateLimit):
            raise InvalidDefinitionError(
                f"{label}: rate_limits takes RateLimit(...) objects, not {limit!r}"
            )
        ident = limit.key or f"dynamic:{limit.dynamic_key}"
        if ident in seen:
            raise InvalidDefinitionError(f"{label}: rate limit {ident!r} is listed twice")
        seen.add(ident)
        uses.append(limit.use().model_dump(exclude_none=True))
    return uses


def task_concurrency(
    name: str | None, limits: Concurrency | Sequence[Concurrency]
) -> list[dict[str, Any]]:
    """A task's concurrency limits (issue #21) as its definition carries them."""
    label = f"task {name!r}" if name else "task"
    listed = [limits] if isinstance(limits, Concurrency) else list(limits)
    out: list[dict[str, Any]] = []
    for limit in listed:
        if not isinstance(limit, Concurrency):
            raise InvalidDefinitionError(
                f"{label}: concurrency takes Concurrency(...) objects, not {limit!r}"
            )
        out.append(limit.definition().model_dump())
    expressions = [c["expression"] for c in out]
    if len(set(expressions)) != len(expressions):
        raise InvalidDefinitionError(f"{label}: concurrency lists an expression twice")
    return out


def task_policy(
    name: str | None,
    retries: int,
    backoff_factor: float | None,
    backoff_max_seconds: float | None,
    backoff_initial_seconds: float,
    execution_timeout: Duration | None,
    schedule_timeout: Duration | None,
) -> dict[str, Any]:
    """The retry and timeout fields of a TaskDefinition, checked now, with errors that
    name the bad option."""
    label = f"task {name!r}" if name else "task"
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidDefinitionError(f"{label}: retries={retries!r} must be a whole number >= 0")
    if backoff_factor is not None and backoff_factor < 1:
        raise InvalidDefinitionError(f"{label}: backoff_factor={backoff_factor!r} must be >= 1")
    if backoff_initial_seconds < 0:
        raise InvalidDefinitionError(
            f"{label}: backoff_initial_seconds={backoff_initial_seconds!r} must be >= 0"
        )
    if backoff_max_seconds is not None and backoff_max_seconds < 0:
        raise InvalidDefinitionError(
            f"{label}: backoff_max_seconds={backoff_max_seconds!r} must be >= 0"
        )
    policy: dict[str, Any] = {
        "retries": retries,
        "backoff_initial_seconds": backoff_initial_seconds,
    }
    if backoff_factor is not None:
        policy["backoff_factor"] = backoff_factor
    if backoff_max_seconds is not None:
        policy["backoff_max_seconds"] = backoff_max_seconds
    exec_s = seconds(execution_timeout, f"{label}: execution_timeout")
    sched_s = seconds(schedule_timeout, f"{label}: schedule_timeout")
    if exec_s is not None:
        policy["execution_timeout_seconds"] = exec_s
    if sched_s is not None:
        policy["schedule_timeout_seconds"] = sched_s
    return policy
