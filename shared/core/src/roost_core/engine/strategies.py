"""What a full task-level concurrency key does to the attempts that do not fit it (issue
#21): pure logic, no I/O. The ratelimiter's admission pass (roost_core.engine.admit)
decides this first, applies it in the same transaction, and lets choose() admit among
the waiters that are left.

The waiters are read as arrivals, oldest first, the way workflow concurrency treats new
runs (roost_core.engine.concurrency): a key's places are taken by the attempts holding
it and by the earlier waiters on it that were not cancelled, so "full" means the same
whatever pass happens to see an attempt first.

* ``wait`` (``group_round_robin``, and every other key): nothing here; choose() makes
  the attempt wait its turn.
* ``cancel_newest``: an attempt arriving at a key whose places are all taken is
  cancelled, and so takes no place on its other keys either.
* ``cancel_in_progress``: an arriving attempt takes a place; while the key has more
  than its limit, its oldest attempt is cancelled: a holder (stopped on its worker; its
  units come back only when that attempt has ended, so the newcomer is admitted then and
  the key is never over) or an earlier waiter.

An attempt on several keys is cancelled if any one of them says so. Deciding again on
the rows a committed pass left gives no new cancellation (its cancelled waiters are
gone, its cancelled holders are marked and not given here), so a pass that runs twice,
or dies before its commit, cancels nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roost_core.engine.choose import Key, KeyState, Waiter

Attempt = tuple[str, int]  # (task run id, attempt)


@dataclass(frozen=True)
class Holder:
    """An admitted attempt holding units of a ``cancel_in_progress`` key, which the
    ratelimiter has not asked to cancel yet."""

    tenant_id: str
    key: str
    run_id: str
    task_run_id: str
    attempt: int
    task: str
    units: int


@dataclass
class Cancellations:
    waiters: list[tuple[Waiter, str]] = field(default_factory=list)  # and why
    holders: list[tuple[Holder, str]] = field(default_factory=list)  # one per attempt

    @property
    def waiter_ids(self) -> set[int]:
        return {w.id for w, _ in self.waiters}


@dataclass
class _Place:
    """An attempt's place on a ``cancel_in_progress`` key."""

    attempt: Attempt
    units: int
    who: Waiter | Holder


def make_room(
    waiters: list[Waiter], keys: dict[Key, KeyState], holders: dict[Key, list[Holder]]
) -> Cancellations:
    """The cancellations the keys' strategies call for. ``holders``: of each
    ``cancel_in_progress`` key, oldest first. Waiters that could never be admitted (a key
    gone, or smaller than what they need) are left to choose(), which fails them."""
    out = Cancellations()
    taken = {k: s.in_use for k, s in keys.items() if s.on_full == "cancel_newest"}
    lines = {
        k: [_Place((h.task_run_id, h.attempt), h.units, h) for h in holders.get(k, [])]
        for k, s in keys.items()
        if s.on_full == "cancel_in_progress"
    }
    gone: set[Attempt] = set()

    def cancel(place: _Place, why: str) -> None:
        if place.attempt in gone:
            return
        gone.add(place.attempt)
        if isinstance(place.who, Waiter):
            out.waiters.append((place.who, why))
            for k, units in place.who.needs():  # its places on cancel_newest keys free up
                if k in taken:
                    taken[k] -= units
        else:
            out.holders.append((place.who, why))
        for line in lines.values():
            line[:] = [p for p in line if p.attempt != place.attempt]

    for waiter in sorted(waiters, key=lambda w: w.id):
        needs = waiter.needs()
        if any(k not in keys or units > keys[k].limit for k, units in needs):
            continue
        full = next((k for k, u in needs if k in taken and taken[k] + u > keys[k].limit), None)
        if full is not None:
            limit = keys[full].limit
            out.waiters.append(
                (
                    waiter,
                    f"task {waiter.task!r} was cancelled: concurrency key {full[1]!r} is full"
                    f" ({taken[full]} of {limit} running or waiting; cancel_newest)",
                )
            )
            gone.add((waiter.task_run_id, waiter.attempt))
            continue
        for k, units in needs:
            if k in taken:
                taken[k] += units
        for k, units in needs:
            if k not in lines:
                continue
            line = lines[k]
            line.append(_Place((waiter.task_run_id, waiter.attempt), units, waiter))
            # The newcomer's units never exceed the limit (checked above), so it is never
            # the one cancelled here.
            while sum(p.units for p in line) > keys[k].limit:
                oldest = line.pop(0)
                cancel(
                    oldest,
                    f"task {oldest.who.task!r} was cancelled: a newer attempt took its place"
                    f" in concurrency key {k[1]!r} (at most {keys[k].limit};"
                    " cancel_in_progress)",
                )
    return out
