"""How a ready task attempt becomes an outbox message for its workflow's Dramatiq queue.
Shared by the api (a run's root tasks) and the scheduler (children made ready, retries,
replays), so "dispatch an attempt" means one thing everywhere."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from roost_core.expressions import evaluate_key
from roost_core.outbox import Admission, DynamicKey, OnFull, OutboxMessage
from roost_core.topology import Topology
from roost_core.wire import TaskDefinition, TaskMessage, dramatiq_envelope

# What a task-level concurrency strategy makes its keys do when full (issue #21).
ON_FULL: dict[str, OnFull] = {
    "group_round_robin": "wait",
    "cancel_newest": "cancel_newest",
    "cancel_in_progress": "cancel_in_progress",
}


def task_group_key(workflow: str, task: str, index: int, group: str) -> str:
    """The rate-limit key of a task-level concurrency group (issue #21): the task's
    ``index``-th concurrency expression gave ``group`` (listed with the other keys)."""
    key = f"task-concurrency:{workflow}:{task}:{index}:{group}"
    if len(key) > 200:  # still unique, still a valid key
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        key = f"task-concurrency:{workflow[:60]}:{task[:60]}:{digest}"
    return key


def task_attempt_message(
    topology: Topology,
    message: TaskMessage,
    admission: Admission | None = None,
    queue: str | None = None,
    priority: int = 1,
) -> OutboxMessage:
    """The outbox message that hands ``message`` to a worker (after the ratelimiter's
    ``admission``, if it needs one): on its workflow's shared queue, or on ``queue`` (a
    worker process's own, where the engine placed it)."""
    queue = queue or topology.task_queue(message.workflow)
    body = dramatiq_envelope(queue, topology.actor_name(message.workflow), message)
    return OutboxMessage(
        exchange="", routing_key=queue, body=body, admission=admission, priority=priority
    )


def schedule_deadline(task: TaskDefinition, now: float | None = None) -> float | None:
    """When an attempt of ``task`` queued ``now`` fails unstarted (unix seconds), if ever."""
    if task.schedule_timeout_seconds is None:
        return None
    return (time.time() if now is None else now) + task.schedule_timeout_seconds


def attempt(
    topology: Topology,
    task: TaskDefinition,
    *,
    tenant_id: str,
    workflow: str,
    run_id: str,
    task_run_id: str,
    attempt: int,
    run_input: Any,
    parent_outputs: dict[str, Any] | None = None,
    task_errors: dict[str, Any] | None = None,
    trace: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    journal: list[Any] | None = None,
    now: float | None = None,
    queue: str | None = None,
    priority: int = 1,
) -> tuple[OutboxMessage, float | None]:
    """The outbox message for one attempt of ``task`` (to ``queue``, if placed; with the
    AMQP ``priority`` of its run, roost_core.engine.priority), and its schedule deadline
    (unix seconds, or None) for the task run's ``deadline_at``."""
    deadline = schedule_deadline(task, now)
    message = TaskMessage(
        run_id=run_id,
        task_run_id=task_run_id,
        workflow=workflow,
        task=task.name,
        attempt=attempt,
        input=run_input,
        parent_outputs=parent_outputs or {},
        task_errors=task_errors or {},
        execution_timeout=task.execution_timeout_seconds,
        schedule_deadline=deadline,
        trace=trace or {},
        metadata=metadata or {},
        journal=journal or [],
    )
    admission = None
    if task.admitted:
        keys: list[str] = []
        units: list[int] = [r.units for r in task.rate_limits]
        dynamic: list[DynamicKey] = []
        for use in task.rate_limits:
            if use.key is not None:
                keys.append(use.key)
            else:
                # Checked on this input when the run was triggered, so it cannot fail here.
                assert use.dynamic_key is not None and use.limit is not None
                key = evaluate_key(use.dynamic_key, run_input)
                keys.append(key)
                dynamic.append(DynamicKey(key, use.limit, use.window_seconds))
        for index, limit in enumerate(task.concurrency):
            # Checked on this input at the trigger too: a held unit per group, per attempt.
            group = evaluate_key(limit.expression, run_input)
            key = task_group_key(workflow, task.name, index, group)
            keys.append(key)
            units.append(1)
            dynamic.append(DynamicKey(key, limit.max_runs, None, ON_FULL[limit.strategy]))
        admission = Admission(
            tenant_id=tenant_id,
            run_id=run_id,
            task_run_id=task_run_id,
            attempt=attempt,
            task=task.name,
            keys=tuple(keys),
            units=tuple(units),
            dynamic=tuple(dynamic),
        )
    return task_attempt_message(topology, message, admission, queue, priority), deadline
