"""Workflow concurrency at trigger time (roost_core.engine.trigger): each new run's
group (the workflow's CEL expression over its input), and what the strategy does when a
group is full.

* ``group_round_robin``: nothing here: the run waits in the ratelimiter for a unit of
  its group's key, groups taking turns.
* ``cancel_in_progress``: the group's oldest active runs are cancelled so that the new
  run fits.
* ``cancel_newest``: the new run is cancelled at once when the group is full.

Two triggers into the same group take turns (a transaction-scoped advisory lock per
group), so two new runs can never both see the last free place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from roost_core.admission import group_key
from roost_core.engine.plan import Plan, Statement
from roost_core.errors import InvalidInputError
from roost_core.expressions import evaluate_key
from roost_core.queries import SQL
from roost_core.statuses import RunStatus
from roost_core.wire import WorkflowDefinition

_LOCK_GROUP = SQL.lock_concurrency_group
_ACTIVE_IN_GROUPS = SQL.active_group_runs


@dataclass
class Cancellations:
    """What the strategy cancels to make room."""

    keys: list[str | None]  # each request's group key (None: no concurrency)
    cancel_existing: list[str] = field(default_factory=list)  # run ids
    cancel_new: set[int] = field(default_factory=set)  # request indexes
    reasons: dict[str, str] = field(default_factory=dict)  # run id or index -> why


def group_keys(definition: WorkflowDefinition, inputs: list[Any]) -> list[str | None]:
    """Each input's group key; InvalidInputError naming the run and the expression."""
    concurrency = definition.concurrency
    if concurrency is None:
        return [None] * len(inputs)
    keys: list[str | None] = []
    for index, run_input in enumerate(inputs):
        try:
            group = evaluate_key(concurrency.expression, run_input)
        except ValueError as exc:
            where = f"runs[{index}]: " if len(inputs) > 1 else ""
            raise InvalidInputError(f"{where}concurrency: {exc}") from None
        keys.append(group_key(definition.name, group))
    return keys


def strategy(
    workflow_id: str,
    definition: WorkflowDefinition,
    keys: list[str | None],
    new: list[bool],
    exclude: list[Any],
) -> Plan[Cancellations]:
    """Decide the cancellations the strategy calls for; ``new`` marks the requests that
    create a run (not an earlier idempotent one), whose ids are ``exclude``d from the
    group's runs found active (they are counted in order instead)."""
    result = Cancellations(keys)
    concurrency = definition.concurrency
    if concurrency is None or concurrency.strategy == "group_round_robin":
        return result
    wanted = sorted({k for k, n in zip(keys, new, strict=True) if k is not None and n})
    for key in wanted:  # in key order: two triggers never wait on each other's locks
        yield Statement(_LOCK_GROUP, {"key": key})
    active: dict[str, list[str]] = {}
    if wanted:
        rows = yield Statement(
            _ACTIVE_IN_GROUPS,
            {
                "workflow_id": workflow_id,
                "keys": wanted,
                "statuses": [RunStatus.QUEUED, RunStatus.RUNNING],
                "exclude": exclude,
            },
        )
        for found_key, run_id in rows:
            active.setdefault(found_key, []).append(str(run_id))
    limit = concurrency.max_runs
    for index, (run_key, is_new) in enumerate(zip(keys, new, strict=True)):
        if run_key is None or not is_new:
            continue
        key = run_key
        group = active.setdefault(key, [])
        if concurrency.strategy == "cancel_newest":
            if len(group) >= limit:
                result.cancel_new.add(index)
                result.reasons[str(index)] = (
                    f"cancelled by its workflow's concurrency (cancel_newest): group {key!r}"
                    f" already had {len(group)} active run(s) of at most {limit}"
                )
            else:
                group.append(f"new:{index}")
        else:  # cancel_in_progress
            group.append(f"new:{index}")
            while len(group) > limit:
                oldest = group.pop(0)
                why = (
                    f"cancelled by its workflow's concurrency (cancel_in_progress): a newer"
                    f" run of group {key!r} took its place"
                )
                if oldest.startswith("new:"):
                    result.cancel_new.add(int(oldest[4:]))
                    result.reasons[oldest[4:]] = why
                else:
                    result.cancel_existing.append(oldest)
                    result.reasons[oldest] = why
    return result
