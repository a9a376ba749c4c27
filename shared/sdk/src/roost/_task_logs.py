"""Standard ``logging`` inside a task (issue #20): every record logged while a task runs
carries its run id, workflow, task and attempt (in the text and JSON formats alike), and
records at ``ROOST_TASK_LOG_LEVEL`` (INFO) and above reach the run's logs beside
``ctx.log`` lines, streamed live the same way.

Which task is running is a context variable, set around the task function (and carried
to Dramatiq's event-loop thread for async tasks), so records from other threads (a
thread the task starts included: threads do not inherit context variables), and from
Roost's own machinery, stay out of the run's logs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from pythonjsonlogger.json import JsonFormatter

if TYPE_CHECKING:
    from roost._context import Context

#: The task running in this context (None outside any).
CURRENT: ContextVar[Context | None] = ContextVar("roost_current_task", default=None)
# Set while a record is being sent to the run's logs: what sending logs is not sent.
_SENDING: ContextVar[bool] = ContextVar("roost_task_log_sending", default=False)

# Loggers of the worker's own machinery: their lines are the worker's, not the task's.
_OWN = ("roost", "dramatiq", "pika", "opentelemetry", "urllib3", "httpx", "httpcore")

LEVEL_SETTING = "ROOST_TASK_LOG_LEVEL"


@contextmanager
def running(ctx: Context) -> Iterator[None]:
    """Mark ``ctx``'s task as the one running in this context."""
    token = CURRENT.set(ctx)
    try:
        yield
    finally:
        CURRENT.reset(token)


class TaskFields(logging.Filter):
    """Adds ``run_id``, ``workflow``, ``task`` and ``attempt`` to each record logged while
    a task runs (what a call passes in ``extra`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = CURRENT.get()
        if ctx is not None:
            for name, value in (
                ("run_id", ctx.run_id),
                ("workflow", ctx.workflow_name),
                ("task", ctx.task_name),
                ("attempt", ctx.attempt_number),
            ):
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True


class ToRunLogs(logging.Handler):
    """Sends the running task's records to its run's logs (as ``ctx.log`` does): the
    line ``LEVEL logger: message`` (with the traceback, if any), and its level and
    logger as fields."""

    def emit(self, record: logging.LogRecord) -> None:
        ctx = CURRENT.get()
        if ctx is None or _SENDING.get() or record.name.split(".")[0] in _OWN:
            return
        token = _SENDING.set(True)
        try:
            message = f"{record.levelname} {record.name}: {record.getMessage()}"
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            ctx._emit("log", {"message": message, "level": record.levelname, "logger": record.name})
        except Exception:
            self.handleError(record)
        finally:
            _SENDING.reset(token)


class _WithTaskFields(logging.Formatter):
    """A text format's line, then `` [run=… workflow=… task=… attempt=…]`` for a
    record logged while a task runs (the JSON format has them as fields already)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        line = self._inner.format(record)
        run_id = getattr(record, "run_id", None)
        if run_id is None:
            return line
        return (
            f"{line} [run={run_id} workflow={getattr(record, 'workflow', '')}"
            f" task={getattr(record, 'task', '')} attempt={getattr(record, 'attempt', '')}]"
        )


def install(root: logging.Logger | None = None) -> None:
    """Add the task fields to every handler of the root logger (and, in a text format,
    to its lines), and the handler that sends task records to their runs (unless
    ``ROOST_TASK_LOG_LEVEL`` is ``off``). SystemExit names a bad level."""
    root = root or logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, ToRunLogs):
            continue
        if not any(isinstance(f, TaskFields) for f in handler.filters):
            handler.addFilter(TaskFields())
        formatter = handler.formatter or logging.Formatter()
        if not isinstance(formatter, _WithTaskFields | JsonFormatter):
            handler.setFormatter(_WithTaskFields(formatter))
    level = os.environ.get(LEVEL_SETTING, "INFO").strip().upper() or "INFO"
    if level == "OFF":
        return
    if not isinstance(logging.getLevelName(level), int):
        raise SystemExit(f"{LEVEL_SETTING}={level!r} is not a logging level (INFO, off...)")
    if not any(isinstance(h, ToRunLogs) for h in root.handlers):
        root.addHandler(ToRunLogs(level))
