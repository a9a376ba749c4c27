"""What a task receives besides its input: where it is, and its parents' outputs."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from roost import _durations as durations
from roost._durations import Duration
from roost._errors import TaskCancelRequested
from roost._typed import output_adapter
from roost_core.wire import TaskMessage

if TYPE_CHECKING:
    from roost._workflow import Task

logger = logging.getLogger("roost.task")

# Sends what a task emits (type, JSON data) to its run's event log; a no-op when the
# task is called outside a worker.
Emit = Callable[[str, Any], None]


def _no_emit(type: str, data: Any) -> None:
    return None


# Moves the worker's own time limit of the attempt to this many seconds from now (set
# by roost._deadlines on a worker; a no-op outside one).
Extend = Callable[[float], None]


def _no_extend(seconds: float) -> None:
    return None


class Context:
    """Passed to every task as its second argument."""

    def __init__(self, message: TaskMessage, worker_id: str, emit: Emit = _no_emit) -> None:
        self._message = message
        self.worker_id = worker_id
        self._cancelled = threading.Event()
        self._emit = emit
        self._extend: Extend = _no_extend
        self._spawned = 0  # child runs triggered so far in this attempt (roost._children)

    def _spawn_key(self) -> str:
        """The default key of the next child run this task triggers: its number among
        those this attempt triggered (a retry triggers the same ones in the same order,
        and gets the same runs back)."""
        key = str(self._spawned)
        self._spawned += 1
        return key

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
    def metadata(self) -> dict[str, str]:
        """The run's metadata (a copy): what the trigger gave it, and what a schedule
        adds (``roost.cron``, ``roost.scheduled_id``, ...)."""
        return dict(self._message.metadata)

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
        """The output of ``task``, which must be a parent of the running task. Given the
        task itself, whose function's return annotation is a pydantic model or a
        dataclass, the output is that type again (validated from the JSON the parent
        reported, as a standalone task's ``run`` returns it); given its name, or a task
        annotated otherwise, it is the JSON value."""
        name = task if isinstance(task, str) else task.name
        if name not in self._message.parent_outputs:
            raise KeyError(
                f"task {name!r} is not a parent of {self.task_name!r}: a task can read only "
                f"its parents' outputs ({', '.join(self._message.parent_outputs) or 'none'})"
            )
        value = self._message.parent_outputs[name]
        adapter = None if isinstance(task, str) else output_adapter(task.fn)
        return value if adapter is None else adapter.validate_python(value)

    def task_errors(self) -> dict[str, dict[str, Any]]:
        """In an on_failure handler: each failed task's error (type, message,
        traceback), by task name. Empty in ordinary tasks."""
        return {k: dict(v) for k, v in self._message.task_errors.items()}

    def log(self, message: str) -> None:
        """Log a line: stored in the run's event log, streamed to its listeners, and
        written to the worker's own log."""
        message = str(message)
        logger.info(message, extra={"run_id": self.run_id, "task": self.task_name})
        self._emit("log", {"message": message})

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far the task is, from 0.0 to 1.0, with an optional message."""
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise TypeError(f"progress fraction must be a number from 0 to 1, not {fraction!r}")
        if not (0.0 <= fraction <= 1.0) or math.isnan(fraction):
            raise ValueError(f"progress fraction must be from 0 to 1, not {fraction!r}")
        self._emit("progress", {"fraction": float(fraction), "message": message})

    def cancel(self, reason: str | None = None) -> NoReturn:
        """End this task CANCELLED, now: it is not retried, its descendants never start,
        independent branches go on, and the run ends CANCELLED if no task failed. Raises
        ``TaskCancelRequested`` (not an Exception: ``except Exception`` lets it through)."""
        raise TaskCancelRequested(
            reason or f"task {self.task_name!r} cancelled itself (attempt {self.attempt_number})"
        )

    def refresh_timeout(self, duration: Duration) -> None:
        """Give the running attempt ``duration`` (seconds, a timedelta, "10m") from now
        to finish, instead of what is left of its execution timeout: for a long agent
        session that is still making progress. The worker's time limit and the engine's
        deadline both move (the engine's keeps its grace); each call counts from its own
        now, and may shorten as well as lengthen. A task without an execution timeout has
        no deadline to move: ValueError."""
        seconds = durations.seconds(duration, "refresh_timeout")
        assert seconds is not None
        if self._message.execution_timeout is None:
            raise ValueError(
                f"task {self.task_name!r} has no execution_timeout: there is no deadline to refresh"
            )
        deadline = time.time() + seconds
        self._extend(seconds)
        self._emit("deadline", {"deadline": deadline, "seconds": seconds})

    def put_stream(self, chunk: Any) -> None:
        """Send any JSON value to the run's listeners (stored in its event log too)."""
        try:
            json.dumps(chunk, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"put_stream takes a JSON value; {chunk!r} is not one: {exc}") from None
        self._emit("stream", chunk)
