"""What a task attempt asks the ratelimiter for before it may reach a worker: the keys
and units it needs, and the keys made from its run's input (with what a full one does).
An outbox message carries it (roost_core.outbox); the ratelimiter decides on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

# What the ratelimiter does with an attempt that does not fit a full key (issue #21):
# it waits its turn; it is cancelled itself; or the key's oldest attempts are cancelled.
OnFull = Literal["wait", "cancel_newest", "cancel_in_progress"]


class DynamicKey(NamedTuple):
    """A key computed from the run's input, created on first use with what its task
    declares (and updated when that changes)."""

    key: str
    limit: int
    window_seconds: int | None  # None: a concurrency key
    # Last, with a default: run waiters packed before issue #21 carry three fields.
    on_full: OnFull = "wait"


@dataclass(frozen=True)
class Admission:
    """What a task attempt asks the ratelimiter for before it may reach a worker."""

    tenant_id: str
    run_id: str
    task_run_id: str
    attempt: int
    task: str
    keys: tuple[str, ...]
    units: tuple[int, ...]
    # Keys computed from the run's input, created on first use.
    dynamic: tuple[DynamicKey, ...] = ()
