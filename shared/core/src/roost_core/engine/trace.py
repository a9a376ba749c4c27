"""Spans for what a transaction of the engine decided, in each run's trace."""

from __future__ import annotations

import time
from typing import Any

from roost_core import events, tracing
from roost_core.engine.state import RunState

_tracer = tracing.tracer("roost.scheduler")


def trace_decisions(runs: dict[str, RunState]) -> None:
    """Spans in each run's trace for what this batch decided about it: a ``schedule``
    span (``complete`` for the batch that ended the run) with the events it appended,
    and a ``queue`` span per attempt that started, from queued to started (times from
    the database; the worker's own span covers the execution)."""
    now = time.time()
    for run in runs.values():
        if not run.events or not run.trace:
            continue
        types = [e.type for e in run.events]
        final = next((t for t in types if t in events.RUN_FINAL_TYPES), None)
        attributes: dict[str, Any] = {
            "roost.run_id": run.id,
            "roost.workflow": run.workflow,
            "roost.events": types,
        }
        if final:
            attributes["roost.run_status"] = final.removeprefix("run.").upper()
        tracing.record_span(
            _tracer,
            f"complete {run.workflow}" if final else f"schedule {run.workflow}",
            run.trace,
            now,
            now,
            attributes,
            error=final if final in (events.RUN_FAILED, events.RUN_CANCELLED) else None,
        )
        for e in run.events:
            if e.type != events.TASK_STARTED or not isinstance(e.data, dict):
                continue
            queued = e.data.get("queued_at")
            if queued is None:
                continue
            tracing.record_span(
                _tracer,
                f"queue {e.task}",
                run.trace,
                queued,
                e.at,
                {
                    "roost.run_id": run.id,
                    "roost.task": e.task or "",
                    "roost.attempt": e.attempt or 0,
                    "roost.queue_wait_seconds": e.data.get("queue_wait", 0.0),
                },
            )
