"""Child runs inside a durable task (issue #18), as durable calls (roost._durable):

* a *spawn* (``aio_run``, ``aio_run_many`` called in a durable task) triggers the
  child runs once, keyed by the call's number (or the keys given), and records their
  ids: a replay gets the same runs back without asking the api again;
* a *join* (``await wf.aio_run(...)`` waiting for its result, or
  ``ctx.wait_for_runs(refs)``) suspends the task, holding no slot, until every child has
  ended; the engine records their outcomes (roost_core.engine.child_waits), and the
  replay returns each one's outputs, or raises RunFailedError / RunCancelledError for
  the first that did not succeed."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from roost._errors import RunCancelledError, RunFailedError
from roost._runs import RunRef
from roost._trigger_input import bulk_items
from roost_core.api_models import MAX_BULK, ParentRef
from roost_core.wire import DurableCall

if TYPE_CHECKING:
    from roost._durable import DurableContext
    from roost._workflow_runs import WorkflowRuns


class FailedTask(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    status: str
    error: dict[str, Any] | None = None


class ChildOutcome(BaseModel):
    """How a child run ended, as the join recorded it (what RunFailedError reads)."""

    model_config = ConfigDict(frozen=True)

    id: str
    workflow: str | None = None
    status: str
    output: dict[str, Any] | None = None
    failed: list[FailedTask] = []

    @property
    def tasks(self) -> list[FailedTask]:
        return self.failed


async def spawn(
    ctx: DurableContext,
    wf: WorkflowRuns,
    inputs: Sequence[Any],
    keys: Sequence[str] | None,
    metadata: dict[str, str] | None,
    priority: int | None = None,
    desired_labels: dict[str, Any] | None = None,
) -> list[RunRef]:
    """Trigger one child run per input, once: recorded, so a replay gets the same runs."""
    seq, recorded = ctx._claim("spawn", wf.name)
    roost = wf._client()
    if recorded is not None:
        ids = list(recorded.children or [])
    else:
        if keys is not None and len(keys) != len(inputs):
            raise ValueError(f"{wf.name}: {len(inputs)} inputs but {len(keys)} keys")
        chosen = list(keys) if keys is not None else _default_keys(seq, len(inputs))
        parents = [ParentRef(task_run_id=ctx.task_run_id, key=k) for k in chosen]
        items = bulk_items(
            wf.validate_input,
            inputs,
            None,
            MAX_BULK,
            metadata,
            parents,
            priority,
            desired_labels,
        )
        version = await wf.aio_register()
        ids = await roost.workflows.aio_trigger_many(
            wf.name, items, version=version, chunk_size=MAX_BULK
        )
        ctx._new.append(DurableCall(seq=seq, kind="spawn", name=wf.name, children=ids))
    return [RunRef(roost.runs, run_id, wf.name) for run_id in ids]


async def join(ctx: DurableContext, refs: Sequence[RunRef | str]) -> list[dict[str, Any]]:
    """Wait, durably, for every run of ``refs`` to end; each one's outputs by task name,
    in order. Raises for the first that failed or was cancelled."""
    from roost._durable import WaitRequested  # the module that imports this one

    ids = [r.id if isinstance(r, RunRef) else str(r) for r in refs]
    name = ",".join(sorted({r.workflow for r in refs if isinstance(r, RunRef)})) or "runs"
    seq, recorded = ctx._claim("join", name)
    if recorded is None:
        if not ids:
            ctx._new.append(
                DurableCall(seq=seq, kind="join", name=name, children=[], result={"runs": []})
            )
            return []
        call = DurableCall(seq=seq, kind="join", name=name, children=ids)
        raise WaitRequested(
            ctx.task_name, [*ctx.durable_calls, call], None, "children", children=ids
        )
    if recorded.result is None:  # resumed before they ended (a redelivered message)
        waited = list(recorded.children or [])
        raise WaitRequested(ctx.task_name, ctx.durable_calls, None, "children", children=waited)
    outcomes = [ChildOutcome.model_validate(o) for o in recorded.result["runs"]]
    for outcome in outcomes:
        if outcome.status == "CANCELLED":
            raise RunCancelledError(outcome)
        if outcome.status != "SUCCEEDED":
            raise RunFailedError(outcome)
    return [copy.deepcopy(dict(o.output or {})) for o in outcomes]


def _default_keys(seq: int, count: int) -> list[str]:
    """A spawn's keys: its call's number (and each run's index when it makes several)."""
    return [str(seq)] if count == 1 else [f"{seq}.{i}" for i in range(count)]
