"""What a task receives besides its input: where it is, and its parents' outputs."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from roost_core.wire import TaskMessage

if TYPE_CHECKING:
    from roost._workflow import Task

logger = logging.getLogger("roost.task")


class Context:
    """Passed to every task as its second argument."""

    def __init__(self, message: TaskMessage, worker_id: str) -> None:
        self._message = message
        self.worker_id = worker_id
        self._cancelled = threading.Event()

    @property
    def is_cancelled(self) -> bool:
        """True once the run is cancelled: long-running code can check it and stop."""
        return self._cancelled.is_set()

    def _mark_cancelled(self) -> None:
        self._cancelled.set()

    @property
    def run_id(self) -> str:
        return self._message.run_id

    @property
    def task_run_id(self) -> str:
        return self._message.task_run_id

    @property
    def workflow_name(self) -> str:
        return self._message.workflow

    @property
    def task_name(self) -> str:
        return self._message.task

    @property
    def attempt_number(self) -> int:
        """1 for the first attempt, 2 for the first retry, and so on."""
        return self._message.attempt

    @property
    def retry_count(self) -> int:
        return self._message.attempt - 1

    @property
    def parent_outputs(self) -> dict[str, Any]:
        """Every parent's output, by task name."""
        return dict(self._message.parent_outputs)

    def task_output(self, task: Task | str) -> Any:
        """The output of ``task``, which must be a parent of the running task."""
        name = task if isinstance(task, str) else task.name
        if name not in self._message.parent_outputs:
            raise KeyError(
                f"task {name!r} is not a parent of {self.task_name!r}: a task can read only "
                f"its parents' outputs ({', '.join(self._message.parent_outputs) or 'none'})"
            )
        return self._message.parent_outputs[name]

    def task_errors(self) -> dict[str, dict[str, Any]]:
        """In an on_failure handler: each failed task's error (type, message,
        traceback), by task name. Empty in ordinary tasks."""
        return {k: dict(v) for k, v in self._message.task_errors.items()}

    def log(self, message: str) -> None:
        """Log a line from the task (to the worker's log for now)."""
        logger.info(message, extra={"run_id": self.run_id, "task": self.task_name})
