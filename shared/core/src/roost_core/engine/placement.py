"""Where a task attempt goes (issue #21): pure decisions, no I/O.

A plain task goes to its workflow's shared queue, whichever worker takes it. A task of a
sticky run, or with desired labels, is *placed*: the engine picks one live worker
process and sends the attempt to that process's own queue. The rules:

* Sticky, with the run's worker known: "hard" always goes there; if that process is
  gone (stopped, or silent past the heartbeat timeout) the attempt fails, saying so.
  "soft" goes there while it lives, has a free slot (by its last heartbeat and what is
  already placed on it) and meets the task's required labels. Busy or lacking a label:
  this attempt goes elsewhere as if not sticky. Gone: the run moves, sticking from now on
  to the worker this attempt is placed on.
* Sticky, no worker yet (the run's first tasks): placed as below, and the worker chosen
  becomes the run's.
* Desired labels: among live processes that serve the workflow, those lacking a required
  label are out; of the rest, those with a free slot come first (a task never queues
  behind a busy worker while a fitting one idles); then the best score (the weights of
  the preferred labels met) wins, then the least loaded (load / slots), then the id (so
  that a tie is decided the same way every time). None left: the attempt waits, and its
  reason names what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from roost_core.labels import DesiredLabel, LabelValue, score, unmet

Sticky = Literal["hard", "soft"] | None

STICKY_WORKER_GONE = "StickyWorkerGone"


@dataclass(frozen=True)
class Candidate:
    """A live worker process that serves the workflow."""

    id: str
    slots: int
    load: int  # attempts it runs, plus those placed on it and not yet started
    labels: Mapping[str, LabelValue]

    @property
    def busy(self) -> bool:
        return self.load >= self.slots


@dataclass(frozen=True)
class Placement:
    """Where one attempt goes. ``worker_id`` None and ``waits`` False: the shared
    queue. ``waits``: no process can take it now (look again shortly). ``error``: the run
    cannot go on (a hard-sticky run whose process is gone). ``reason``: shown with the
    attempt (why there, or why it waits)."""

    worker_id: str | None = None
    reason: str | None = None
    waits: bool = False
    error: str | None = None
    moved: bool = False  # a soft-sticky run whose worker is gone sticks to this one now


SHARED = Placement()


def place(
    workflow: str,
    desired: Mapping[str, DesiredLabel],
    sticky: Sticky,
    sticky_worker: str | None,
    candidates: Sequence[Candidate],
) -> Placement:
    """Where an attempt of a task of ``workflow`` goes (see the module's rules)."""
    if sticky is not None and sticky_worker is not None:
        mine = next((c for c in candidates if c.id == sticky_worker), None)
        if sticky == "hard":
            if mine is None:
                return Placement(
                    error=f"the run is sticky (hard) to worker {sticky_worker}, which is gone"
                    " (stopped, or silent past its heartbeat timeout)"
                )
            return Placement(mine.id, f"sticky (hard) to {mine.id}")
        if mine is not None and not mine.busy and score(desired, mine.labels) is not None:
            return Placement(mine.id, f"sticky (soft) to {mine.id}")
        if mine is None:  # gone: the run moves to where this attempt goes
            moved = place(workflow, desired, sticky, None, candidates)
            gone = f"sticky (soft): worker {sticky_worker} gone"
            if moved.worker_id is None:
                return _prefixed(moved, f"{gone}; ")
            return Placement(moved.worker_id, f"{gone}, moved to {moved.worker_id}", moved=True)
        why = "busy" if mine.busy else "missing a required label"
        chosen = _by_labels(workflow, desired, candidates)
        if chosen.worker_id is None and not chosen.waits and not desired:
            return Placement(reason=f"sticky (soft) worker {sticky_worker} {why}: any worker")
        return _prefixed(chosen, f"sticky (soft) worker {sticky_worker} {why}; ")
    if sticky is None and not desired:
        return SHARED
    chosen = _by_labels(workflow, desired, candidates)
    if sticky is not None and chosen.worker_id is None and not chosen.waits:
        # The first task of a sticky run still needs one process to stick to.
        least = _least_loaded(candidates)
        if least is None:
            return Placement(reason=f"no live worker serves workflow {workflow!r}", waits=True)
        return Placement(least.id, f"sticky ({sticky}): first task, least loaded {least.id}")
    return chosen


def _by_labels(
    workflow: str, desired: Mapping[str, DesiredLabel], candidates: Sequence[Candidate]
) -> Placement:
    if not desired:
        return SHARED
    scored = [(s, c) for c in candidates if (s := score(desired, c.labels)) is not None]
    if not scored:
        return Placement(reason=_why_none(workflow, desired, candidates), waits=True)
    free = [(s, c) for s, c in scored if not c.busy]
    scored = free or scored  # all busy: the best of them queues it
    best = max(s for s, _ in scored)
    chosen = _least_loaded([c for s, c in scored if s == best])
    assert chosen is not None
    total = sum(w.weight for w in desired.values() if not w.required)
    return Placement(chosen.id, f"labels: score {best}/{total} on {chosen.id}")


def _least_loaded(candidates: Sequence[Candidate]) -> Candidate | None:
    if not candidates:
        return None
    return min(candidates, key=lambda c: (c.load / max(c.slots, 1), c.id))


def _why_none(
    workflow: str, desired: Mapping[str, DesiredLabel], candidates: Sequence[Candidate]
) -> str:
    """Why no live worker can take the task: each one's unmet required labels."""
    wanted = ", ".join(w.describe(k) for k, w in sorted(desired.items()) if w.required)
    if not candidates:
        return f"waits for a worker of workflow {workflow!r} with {wanted}: none is live"
    shown = "; ".join(f"{c.id} lacks {', '.join(unmet(desired, c.labels))}" for c in candidates[:5])
    more = f" (and {len(candidates) - 5} more)" if len(candidates) > 5 else ""
    return f"waits for a worker with {wanted}: {shown}{more}"


def _prefixed(placement: Placement, prefix: str) -> Placement:
    return Placement(
        placement.worker_id,
        prefix + (placement.reason or "any worker"),
        placement.waits,
        placement.error,
    )


def merged_labels(
    task: Mapping[str, DesiredLabel], run: Mapping[str, DesiredLabel] | None
) -> Mapping[str, DesiredLabel]:
    """A task's desired labels with a run's override, key by key (the run's win)."""
    if not run:
        return task
    return {**task, **run}
