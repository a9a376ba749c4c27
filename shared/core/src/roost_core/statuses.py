"""The one status vocabulary shared by the SDK, HTTP, CLI, events and dashboard."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """Where one task of a run stands.

    PENDING is the one status beyond the architecture's core vocabulary: the task waits
    for its parents and has not been handed to any queue yet.
    """

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_final(self) -> bool:
        return self in TASK_FINAL


class RunStatus(StrEnum):
    """Where a whole run stands."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in RUN_FINAL


TASK_FINAL = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TIMED_OUT}
)
RUN_FINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
