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
    # A durable task waiting (a sleep, issue #18): it holds no worker slot and no units;
    # the task runs again, replaying its durable calls, once the wait is over.
    WAITING = "WAITING"
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


class WorkerStatus(StrEnum):
    """Where a worker process stands (``GET /api/v1/workers``, ``roost workers list``,
    the dashboard). A process reports the first three itself in its heartbeats
    (``roost_core.wire.WorkerState``); DEAD is what the engine concludes from silence."""

    ALIVE = "alive"  # taking and running tasks
    DRAINING = "draining"  # asked to stop: takes no new task, lets its running ones finish
    STOPPED = "stopped"  # exited cleanly, after its last task
    DEAD = "dead"  # not heard from within the heartbeat timeout, and never said it stopped

    @classmethod
    def of(cls, reported: str, heard_recently: bool) -> WorkerStatus:
        """The status of a worker whose last heartbeat said ``reported``. A stopped
        process stays stopped however long ago that was (it said goodbye); any other
        one that has gone silent, draining included, is dead."""
        if reported == cls.STOPPED:
            return cls.STOPPED
        if not heard_recently:
            return cls.DEAD
        return cls(reported)


class ApprovalStatus(StrEnum):
    """Where a question a durable task asked (``ctx.wait_for_approval``) stands."""

    PENDING = "PENDING"  # its task waits for a decision
    APPROVED = "APPROVED"  # final
    REJECTED = "REJECTED"  # final
    EXPIRED = "EXPIRED"  # its timeout passed first: the task got WaitTimeoutError
    CANCELLED = "CANCELLED"  # its task ended otherwise (its run was cancelled) first
