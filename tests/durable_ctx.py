"""A DurableContext for unit tests of durable calls (roost._durable): a task ``land`` of
workflow ``wf`` whose attempt carries ``journal``, on a clock fixed at ``now``."""

from __future__ import annotations

from roost import DurableContext
from roost_core.wire import DurableCall, TaskMessage

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def durable_ctx(journal: list[DurableCall] | None = None, now: float = NOW) -> DurableContext:
    message = TaskMessage(
        run_id="r1",
        task_run_id="tr1",
        workflow="wf",
        task="land",
        attempt=2 if journal else 1,
        input={},
        journal=journal or [],
    )
    return DurableContext(message, "w@h:1", clock=lambda: now)
