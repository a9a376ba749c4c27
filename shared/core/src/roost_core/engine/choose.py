"""Which waiting attempts to admit now: pure logic, no I/O.

* FIFO per key: an attempt is admitted only when no earlier attempt waits on any of its
  keys, so nobody overtakes on a key.
* All or nothing: an attempt takes all its keys' units at once or none, so a rate limit
  and a concurrency limit can never deadlock by holding half of what two tasks need.
* Fair across keys: keys take turns, one admission each per round, starting from a
  different key every pass, so a key with a deep backlog does not go first every time.
* Never over: an attempt is admitted only if every key has its units free; units in use
  count held concurrency units and the window's admissions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from roost_core.outbox import OnFull

Key = tuple[str, str]  # (tenant id, key)


@dataclass
class Waiter:
    id: int
    tenant_id: str
    run_id: str
    task_run_id: str
    attempt: int
    task: str
    keys: list[str]
    units: list[int]
    queue: str
    message: bytes
    priority: int | None = None  # the AMQP priority its message is published with

    def needs(self) -> list[tuple[Key, int]]:
        return [((self.tenant_id, k), u) for k, u in zip(self.keys, self.units, strict=True)]


@dataclass
class KeyState:
    limit: int
    window_seconds: int | None  # None: a concurrency key
    in_use: int
    # What an attempt that does not fit does (roost_core.engine.strategies decides the
    # cancellations before choose() sees the waiters that are left).
    on_full: OnFull = "wait"

    @property
    def free(self) -> int:
        return self.limit - self.in_use


@dataclass
class Decision:
    admitted: list[Waiter]
    impossible: list[tuple[Waiter, str]]  # can never be admitted, and why


def choose(waiters: list[Waiter], keys: dict[Key, KeyState], rotation: int = 0) -> Decision:
    """Decide, updating ``keys``' usage for what is admitted."""
    admitted: list[Waiter] = []
    impossible: list[tuple[Waiter, str]] = []
    decided: set[int] = set()
    queues: dict[Key, deque[Waiter]] = {}
    for waiter in sorted(waiters, key=lambda w: w.id):
        reason = _never(waiter, keys)
        if reason is not None:
            impossible.append((waiter, reason))
            decided.add(waiter.id)
            continue
        for key, _ in waiter.needs():
            queues.setdefault(key, deque()).append(waiter)
    order = sorted(queues)
    if order:
        shift = rotation % len(order)
        order = order[shift:] + order[:shift]
    blocked: set[Key] = set()
    progress = True
    while progress:
        progress = False
        for key in order:
            if key in blocked:
                continue
            queue = queues[key]
            while queue and queue[0].id in decided:
                queue.popleft()
            if not queue:
                continue
            waiter = queue[0]
            needs = waiter.needs()
            if any(_head(queues[k], decided) is not waiter for k, _ in needs):
                continue  # an earlier attempt waits on another of its keys
            short = [k for k, units in needs if keys[k].free < units]
            if short:
                blocked.update(short)
                blocked.add(key)
                continue
            for k, units in needs:
                keys[k].in_use += units
            decided.add(waiter.id)
            admitted.append(waiter)
            progress = True
    return Decision(admitted, impossible)


def _head(queue: deque[Waiter], decided: set[int]) -> Waiter | None:
    while queue and queue[0].id in decided:
        queue.popleft()
    return queue[0] if queue else None


def _never(waiter: Waiter, keys: dict[Key, KeyState]) -> str | None:
    for (tenant, key), units in waiter.needs():
        state = keys.get((tenant, key))
        if state is None:
            return f"rate limit {key!r} no longer exists"
        if units > state.limit:
            return f"needs {units} units of rate limit {key!r}, whose limit is now {state.limit}"
    return None
