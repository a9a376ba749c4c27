"""The SDK's exceptions. Roost's root error and the server-side errors come from
roost_core so that one vocabulary holds on both sides of the wire."""

from __future__ import annotations

from typing import Any

from dramatiq.threading import Interrupt

from roost_core.errors import (
    AuthenticationError,
    BadRequestError,
    BrokerUnavailableError,
    ConflictError,
    DatabaseUnavailableError,
    InvalidDefinitionError,
    InvalidInputError,
    NotFoundError,
    RoostError,
    UnknownRunError,
    UnknownWorkflowError,
)

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BrokerUnavailableError",
    "ConfigurationError",
    "ConflictError",
    "DatabaseUnavailableError",
    "ApiUnavailableError",
    "InvalidDefinitionError",
    "InvalidInputError",
    "NonDeterminismError",
    "NonRetryableError",
    "NotFoundError",
    "TaskCancelledError",
    "TaskCancelRequested",
    "RoostError",
    "RoostWarning",
    "RunFailedError",
    "RunCancelledError",
    "RunTimeoutError",
    "UnknownRunError",
    "UnknownWorkflowError",
    "WaitTimeoutError",
    "error_for",
]


class NonRetryableError(RoostError):
    """Raise from a task to fail its attempt at once, whatever retries remain."""

    code = "non_retryable"


class NonDeterminismError(NonRetryableError):
    """A durable task's replay made another durable call than the one it recorded (a
    step of another name, a sleep where a step was, or none at all): its recorded
    results no longer line up with its code, so the attempt fails, naming the call. Not
    retried: replaying the same journal through the same code would fail the same way."""

    code = "non_determinism"


class WaitTimeoutError(NonRetryableError, TimeoutError):
    """Raised inside a durable task by ``ctx.wait_for_event`` when its timeout passed
    before an event came (names the key and the timeout), or by
    ``ctx.wait_for_approval`` when it passed before a person decided. Catch it to go on without the
    event. It is raised again at that call on every later replay (the journal keeps the
    wait unanswered), so an attempt that lets it escape fails at once: a retry would
    replay the same timeout."""

    code = "wait_timeout"

    def __init__(self, message: str, key: str = "", until: float | None = None) -> None:
        super().__init__(message)
        self.key = key  # the event key waited for ("" for an approval)
        self.until = until  # when the wait timed out, unix seconds


class TaskCancelledError(Interrupt):
    """Raised inside a running sync task when its run is cancelled (async tasks see
    asyncio.CancelledError). Like asyncio.CancelledError it is not an Exception, so a
    task's ``except Exception`` does not swallow it; catch it to clean up."""


class TaskCancelRequested(BaseException):  # noqa: N818 (a signal, not an error)
    """Raised by ``ctx.cancel()``: the calling task ends CANCELLED (no retry), its
    descendants never start. Not an Exception, so ``except Exception`` lets it through."""


class ConfigurationError(RoostError):
    """Raised when the SDK's settings are missing or contradict each other."""

    code = "configuration"


class ApiUnavailableError(RoostError):
    """Raised when the Roost api cannot be reached, or speaks another protocol (TLS)."""

    code = "api_unavailable"


class RunFailedError(RoostError):
    """Raised when waiting for a run that ended FAILED; names every failed task."""

    code = "run_failed"

    def __init__(self, run: Any) -> None:
        self.run = run
        self.failed_tasks: list[str] = [
            t.name for t in run.tasks if t.status in ("FAILED", "TIMED_OUT")
        ]
        details = "; ".join(
            f"{t.name}: {(t.error or {}).get('type', 'Error')}: "
            f"{(t.error or {}).get('message', '')}"
            for t in run.tasks
            if t.status in ("FAILED", "TIMED_OUT")
        )
        super().__init__(
            f"run {run.id} of {run.workflow!r} failed in task(s) "
            f"{', '.join(self.failed_tasks) or '?'} ({details})"
        )


class RunCancelledError(RoostError):
    """Raised when waiting for a run that was cancelled."""

    code = "run_cancelled"

    def __init__(self, run: Any) -> None:
        self.run = run
        super().__init__(f"run {run.id} of {run.workflow!r} was cancelled")


class RunTimeoutError(RoostError, TimeoutError):
    """Raised when a run did not end within the time the caller was willing to wait."""

    code = "run_timeout"


_BY_CODE: dict[str, type[RoostError]] = {
    cls.code: cls
    for cls in (
        AuthenticationError,
        BadRequestError,
        BrokerUnavailableError,
        ConflictError,
        DatabaseUnavailableError,
        InvalidDefinitionError,
        InvalidInputError,
        NotFoundError,
        UnknownRunError,
        UnknownWorkflowError,
    )
}


def error_for(status: int, body: Any) -> RoostError:
    """The exception for an api error response."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        cls = _BY_CODE.get(str(err.get("code")), RoostError)
        return cls(str(err.get("message")))
    return RoostError(f"api answered HTTP {status}: {body!r}")


class RoostWarning(UserWarning):
    """Something the caller should know that is not an error: e.g. a run was
    triggered of a workflow no live worker serves, so it waits until one starts."""
