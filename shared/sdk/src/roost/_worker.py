"""The worker runtime: a real Dramatiq worker whose actors run Roost tasks.

Each workflow gets one Dramatiq actor on its own queue; one Dramatiq message is one task
attempt. The actor runs the task function and reports ``succeeded`` or ``failed`` to the
events exchange with a publisher confirm, before Dramatiq acknowledges the message
(``started`` goes out only for tasks still running after a short delay; see
``roost._reporter``). A worker that dies mid-task never acknowledges, so RabbitMQ hands the
attempt to another worker. Workers never touch PostgreSQL.

The actor never raises into Dramatiq: a task's failure is reported (the engine applies
its retry policy), and a report that cannot be published, even after reconnecting, puts
the message back on its queue (``roost._delivery``). Dramatiq's own retries, which end
in its dead-letter queue, are off: only a message that is not a task message at all
ends there.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import itertools
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

import dramatiq
import pika.exceptions
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import AsyncIO
from dramatiq.middleware.time_limit import TimeLimitExceeded
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError

from roost._context import Context
from roost._control import ControlListener
from roost._delivery import Delivery
from roost._errors import ConfigurationError, NonRetryableError, TaskCancelledError
from roost._lifecycle import ShutdownBeats
from roost._reporter import Pending, Reporter
from roost._workflow import Task, Workflow
from roost_core import broker as core_broker
from roost_core import topology as topo
from roost_core import tracing
from roost_core.errors import BrokerUnavailableError
from roost_core.outbox import OutboxMessage, Publisher
from roost_core.wire import (
    WORKER_VERSION_MAX,
    TaskEmitted,
    TaskError,
    TaskFailed,
    TaskMessage,
    TaskStarted,
    TaskSucceeded,
    WorkerHeartbeat,
    WorkerState,
)

if TYPE_CHECKING:
    from roost._roost import Roost

logger = logging.getLogger("roost.worker")
_tracer = tracing.tracer("roost.worker")

# Dramatiq's own time limit (10 minutes by default) must not cut Roost tasks short.
_DRAMATIQ_TIME_LIMIT_MS = 7 * 24 * 3600 * 1000
# A report that cannot be published is tried again, on a fresh connection each time,
# for this long before its message goes back to the queue (the broker is down, or this
# process is cut off from it: another worker may do better).
_REPORT_RETRY_SECONDS = 30.0
_REPORT_RETRY_PAUSES = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
# How long a stopping process waits for RabbitMQ to take its last heartbeat ("stopped")
# before it exits anyway: long enough for a reconnect, short enough never to hold up a
# shutdown when the broker is gone (the engine then sees the process go silent: dead).
_LAST_BEAT_WAIT_SECONDS = 3.0


def _sdk_version() -> str | None:
    """The installed roost package's version, reported with every heartbeat."""
    try:
        return importlib.metadata.version("roost")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return None


_SDK_VERSION = _sdk_version()


class Worker:
    """Serves the tasks of ``workflows``. ``start()`` blocks; or run it from a shell
    with ``roost worker module:attr --processes N --threads M``.

    ``version``: the application's version, shown with each worker process
    (``roost workers list``, the dashboard); default ``ROOST_WORKER_VERSION``, else none."""

    def __init__(
        self,
        roost: Roost,
        name: str,
        workflows: list[Workflow],
        slots: int = 8,
        version: str | None = None,
    ) -> None:
        if not workflows:
            raise ConfigurationError(f"worker {name!r} serves no workflows")
        if slots < 1:
            raise ConfigurationError(f"worker {name!r}: slots must be at least 1, not {slots}")
        if version is not None and not 0 < len(version.strip()) <= WORKER_VERSION_MAX:
            raise ConfigurationError(
                f"worker {name!r}: version must be 1 to {WORKER_VERSION_MAX} characters, "
                f"not {version!r}"
            )
        self.roost = roost
        self.name = name
        self.workflows = {wf.name: wf for wf in workflows}
        self.slots = slots
        self.version = version.strip() if version is not None else roost.settings.worker_version
        # What heartbeats say: alive, then draining and stopped as Dramatiq stops this
        # process (roost._lifecycle). Written by the stopping thread, read by the reporter's.
        self._state: WorkerState = "alive"
        self._local = threading.local()
        self.broker: RabbitmqBroker | None = None
        self._started_reporter: Reporter | None = None
        self.control: ControlListener | None = None
        self._delivery = Delivery()
        self._long: dict[str, tuple[float, int, str, OutboxMessage]] = {}
        self._long_lock = threading.Lock()

    @property
    def worker_id(self) -> str:
        return f"{self.name}@{socket.gethostname()}:{os.getpid()}"

    def register(self) -> None:
        """Send every workflow definition to the api (a new version if it changed)."""
        for wf in self.workflows.values():
            wf.register()

    def setup_broker(self) -> RabbitmqBroker:
        """Create this process's Dramatiq broker with one actor per workflow."""
        settings = self.roost.settings
        topology = topo.Topology(settings.namespace)
        connection = core_broker.connect(settings.broker_url)
        try:
            topo.declare_core(connection.channel(), topology)
        finally:
            connection.close()
        # A short AMQP heartbeat: if this process freezes, RabbitMQ closes its connection
        # within ~2 heartbeats and hands its unacknowledged attempts to other workers.
        rabbit = RabbitmqBroker(
            url=core_broker.with_heartbeat(settings.broker_url, settings.amqp_heartbeat_seconds),
            confirm_delivery=True,
        )
        rabbit.add_middleware(AsyncIO())
        rabbit.add_middleware(self._delivery)
        rabbit.add_middleware(ShutdownBeats(self._drain, self._stop))
        dramatiq.set_broker(rabbit)
        for wf in self.workflows.values():
            self._make_actor(rabbit, topology, wf)
        self._state = "alive"
        if self._started_reporter is not None and self._started_reporter.stopped:
            self._started_reporter = None  # started again after a stop: a fresh thread
        self._reporter().start()  # heartbeats from now on
        self.control = ControlListener(
            settings.broker_url, topology, settings.cancel_grace_seconds, self._recent_cancels
        )
        self.control.start()
        self.broker = rabbit
        return rabbit

    def _make_actor(self, rabbit: RabbitmqBroker, topology: topo.Topology, wf: Workflow) -> None:
        def run_task(message: dict[str, Any]) -> None:
            try:
                self.execute(topology, message)
            except TaskCancelledError:
                # A cancel interrupt may land just after the task returned: its run has
                # ended CANCELLED, so there is nothing to report and nothing to retry.
                pass
            except ReportUndelivered as exc:
                requeued = self._delivery.requeue_current()
                logger.error(
                    "could not report an attempt; its message goes back to the queue",
                    extra={
                        "action": "report_undelivered",
                        "message_id": exc.message_id,
                        "requeued": requeued,
                        "error": repr(exc.__cause__),
                    },
                )

        run_task.__name__ = f"roost_{wf.name}"
        dramatiq.actor(
            actor_name=topology.actor_name(wf.name),
            queue_name=topology.task_queue(wf.name),
            broker=rabbit,
            max_retries=0,  # the engine owns delivery (see roost._delivery)
            time_limit=_DRAMATIQ_TIME_LIMIT_MS,
        )(run_task)

    def _recent_cancels(self) -> list[str]:
        """Attempts cancelled in the last day: their messages may still sit on a queue."""
        body = self.roost.api.request(
            "GET", "/api/v1/cancelled-attempts", params={"since": time.time() - 86400}
        )
        return list(body["task_run_ids"])

    # -- running one attempt ---------------------------------------------------------

    def _publisher(self) -> Publisher:
        pub: Publisher | None = getattr(self._local, "publisher", None)
        if pub is None:
            pub = self._local.publisher = Publisher(self.roost.settings.broker_url)
        return pub

    def _report(self, topology: topo.Topology, key: str, report: Any) -> None:
        """Publish a result and wait for RabbitMQ's confirm (before Dramatiq acks). A
        broker that cannot take it is tried again, each time on a fresh connection, for
        up to _REPORT_RETRY_SECONDS; then :class:`ReportUndelivered` is raised."""
        message = OutboxMessage(topology.events_exchange, key, report.model_dump_json().encode())
        give_up = time.monotonic() + _REPORT_RETRY_SECONDS
        for tries in itertools.count():
            try:
                self._publisher().publish(message)
                return
            except (pika.exceptions.AMQPError, BrokerUnavailableError, OSError) as exc:
                self._publisher().close()
                pause = _REPORT_RETRY_PAUSES[min(tries, len(_REPORT_RETRY_PAUSES) - 1)]
                if time.monotonic() + pause > give_up:
                    raise ReportUndelivered(f"{report.task_run_id}:{report.attempt}") from exc
                logger.warning(
                    "could not report an attempt; trying again",
                    extra={"action": "report_retry", "tries": tries + 1, "error": repr(exc)},
                )
                time.sleep(pause)

    def _emit(
        self, topology: topo.Topology, msg: TaskMessage, started_at: float, type: str, data: Any
    ) -> None:
        """Publish what a task emitted, with a confirm, from the task's own thread: its
        channel also carries the task's result, so the log keeps the task's order."""
        emitted = TaskEmitted(
            run_id=msg.run_id,
            task_run_id=msg.task_run_id,
            task=msg.task,
            attempt=msg.attempt,
            worker_id=self.worker_id,
            type=type,  # type: ignore[arg-type]
            started_at=started_at,
            at=time.time(),
            data=data,
        )
        try:
            self._publisher().publish(
                OutboxMessage(
                    topology.events_exchange, topo.TASK_EMITTED, emitted.model_dump_json().encode()
                )
            )
        except (pika.exceptions.AMQPError, BrokerUnavailableError) as exc:
            # A log line must not fail the task that wrote it: the worker's own log keeps
            # it, and the task's result (which is retried) still reaches the engine.
            logger.warning(
                "could not send what a task emitted",
                extra={"action": "emit_failed", "run_id": msg.run_id, "error": repr(exc)},
            )
            self._local.publisher = None

    def _reporter(self) -> Reporter:
        if self._started_reporter is None:
            settings = self.roost.settings
            topology = topo.Topology(settings.namespace)
            self._started_reporter = Reporter(
                settings.broker_url,
                settings.started_report_delay_seconds,
                heartbeat=lambda: self._heartbeat(topology),
                heartbeat_interval=settings.heartbeat_interval_seconds,
            )
        return self._started_reporter

    def _heartbeat(self, topology: topo.Topology) -> OutboxMessage:
        self._ack_long_tasks()
        running = self.control.running() if self.control is not None else {}
        beat = WorkerHeartbeat(
            worker_id=self.worker_id,
            name=self.name,
            workflows=sorted(self.workflows),
            slots=self.slots,
            running=running,
            held=self._delivery.held(),
            sent_at=time.time(),
            state=self._state,
            version=self.version,
            sdk_version=_SDK_VERSION,
        )
        return OutboxMessage(
            topology.events_exchange, topo.WORKER_HEARTBEAT, beat.model_dump_json().encode()
        )

    def _drain(self) -> None:
        """Dramatiq begins to stop this process: say so at once. Not waited for, since
        worker threads still take tasks until this hook returns; the final beat, which
        is waited for, follows it on the same thread, and the periodic beats meanwhile
        say draining too."""
        self._state = "draining"
        logger.info(
            "worker draining", extra={"action": "worker_draining", "worker": self.worker_id}
        )
        self._reporter().beat_now()

    def _stop(self) -> None:
        """Dramatiq has stopped this process's worker: send the last heartbeat and wait,
        boundedly, until RabbitMQ has it (the process exits right after this, and the
        reporter's thread with it); then stop heart-beating."""
        self._state = "stopped"
        reporter = self._reporter()
        if not reporter.beat_now(timeout=_LAST_BEAT_WAIT_SECONDS):
            logger.warning(
                "could not send the last heartbeat; the engine will see this worker go silent",
                extra={"action": "last_heartbeat_failed", "worker": self.worker_id},
            )
        reporter.stop()
        logger.info("worker stopped", extra={"action": "worker_stopped", "worker": self.worker_id})

    def execute(self, topology: topo.Topology, raw: dict[str, Any]) -> None:
        """Run one task attempt and report its outcome. Raises only when a report could
        not be published, so that Dramatiq retries delivery instead of losing it."""
        msg = TaskMessage.model_validate(raw)
        worker_id = self.worker_id
        started_at = time.time()
        common: dict[str, Any] = {
            "run_id": msg.run_id,
            "task_run_id": msg.task_run_id,
            "task": msg.task,
            "attempt": msg.attempt,
            "worker_id": worker_id,
        }
        if msg.schedule_deadline is not None and started_at > msg.schedule_deadline:
            # Too late to start: the engine times it out too; say so rather than run it.
            self._fail(
                topology,
                msg,
                common,
                started_at,
                TaskError(
                    type="ScheduleTimeout",
                    message=f"task {msg.task!r} was not started before its schedule deadline",
                ),
                retryable=False,
                timed_out=True,
            )
            return
        started_report = OutboxMessage(
            topology.events_exchange,
            topo.TASK_STARTED,
            TaskStarted(**common, started_at=started_at).model_dump_json().encode(),
        )
        if msg.execution_timeout is not None or msg.schedule_deadline is not None:
            # The engine watches this attempt's deadlines: tell it at once that it started.
            started = None
            try:
                self._publisher().publish_unconfirmed(started_report)
            except (pika.exceptions.AMQPError, BrokerUnavailableError, OSError) as exc:
                # Run the task all the same: its result carries its start time.
                logger.warning(
                    "could not report a start",
                    extra={"action": "started_report_failed", "error": repr(exc)},
                )
                self._publisher().close()
        else:
            # Otherwise `started` goes out only if the task is still running after a
            # short delay (see roost._reporter).
            started = self._reporter().schedule(started_report)
        # Watched by the heartbeat tick: past long_task_ack_seconds it is acked early.
        with self._long_lock:
            self._long[msg.task_run_id] = (
                time.monotonic(),
                threading.get_ident(),
                f"{msg.task_run_id}:{msg.attempt}",
                started_report,
            )
        try:
            # The attempt's span, child of its run's (the carrier in the message): user
            # spans inside the task nest under it. A no-op when tracing is off.
            with _tracer.start_as_current_span(
                f"task {msg.workflow}.{msg.task}",
                context=tracing.extract(msg.trace),
                kind=SpanKind.CONSUMER,
                attributes={  # few: each costs on every attempt
                    "roost.run_id": msg.run_id,
                    "roost.task": msg.task,
                    "roost.attempt": msg.attempt,
                    "roost.worker_id": worker_id,
                },
            ):
                self._run_attempt(topology, msg, common, started_at, started, worker_id)
        finally:
            with self._long_lock:
                self._long.pop(msg.task_run_id, None)

    def _ack_long_tasks(self) -> None:
        """On the reporter's thread, at each heartbeat tick: for every task running
        longer than long_task_ack_seconds, report it started with a confirm, then
        acknowledge its message (see roost._delivery). Each task is handled once."""
        limit = time.monotonic() - self.roost.settings.long_task_ack_seconds
        with self._long_lock:
            due = [(k, v) for k, v in self._long.items() if v[0] <= limit]
            for key, _ in due:
                del self._long[key]
        for _, (_, thread_id, message_id, started_report) in due:
            assert self._started_reporter is not None
            try:
                self._started_reporter.publish_confirmed(started_report)
            except Exception:
                # Not acked then: RabbitMQ still holds the message, nothing is lost.
                logger.warning(
                    "could not report a long task; not acking it early",
                    exc_info=True,
                    extra={"action": "long_task_ack_failed"},
                )
                continue
            if self._delivery.ack_now(thread_id, message_id):
                logger.info(
                    "long task acknowledged early",
                    extra={"action": "long_task_acked", "message_id": message_id},
                )

    def _run_attempt(
        self,
        topology: topo.Topology,
        msg: TaskMessage,
        common: dict[str, Any],
        started_at: float,
        started: Pending | None,
        worker_id: str,
    ) -> None:
        ctx = Context(
            msg, worker_id, lambda type, data: self._emit(topology, msg, started_at, type, data)
        )
        if self.control is not None and not self.control.begin(msg.task_run_id, ctx):
            self._cancel(started)
            logger.info(
                "task skipped: its run was cancelled",
                extra={"action": "task_skipped_cancelled", "run_id": msg.run_id, "task": msg.task},
            )
            return
        try:
            try:
                output = self._call(msg, ctx)
            finally:
                # No cancel interrupt may target this thread once the task is done.
                if self.control is not None:
                    self.control.end(msg.task_run_id)
        except TaskCancelledError:
            self._cancel(started)
            return  # the run ended CANCELLED already: nothing to report
        except TimeLimitExceeded as exc:
            # Dramatiq's TimeLimit middleware interrupted the task at its execution timeout.
            _span_failed(exc, "timed_out")
            self._cancel(started)
            self._fail(
                topology,
                msg,
                common,
                started_at,
                TaskError(
                    type="ExecutionTimeout",
                    message=f"task {msg.task!r} ran longer than its execution timeout "
                    f"of {msg.execution_timeout} s and was interrupted",
                ),
                retryable=True,
                timed_out=True,
            )
            return
        except Exception as exc:
            _span_failed(exc, "failed")
            self._cancel(started)
            self._fail(
                topology,
                msg,
                common,
                started_at,
                TaskError(
                    type=type(exc).__name__, message=str(exc), traceback=traceback.format_exc()
                ),
                retryable=not isinstance(exc, NonRetryableError),
                timed_out=False,
            )
            return
        self._cancel(started)
        report = TaskSucceeded(
            **common, started_at=started_at, finished_at=time.time(), output=output
        )
        self._report(topology, topo.TASK_SUCCEEDED, report)

    @staticmethod
    def _cancel(started: Pending | None) -> None:
        if started is not None:
            started.cancel()

    def _fail(
        self,
        topology: topo.Topology,
        msg: TaskMessage,
        common: dict[str, Any],
        started_at: float,
        error: TaskError,
        *,
        retryable: bool,
        timed_out: bool,
    ) -> None:
        logger.warning(
            "task failed",
            extra={
                "action": "task_failed",
                "run_id": msg.run_id,
                "task": msg.task,
                "attempt": msg.attempt,
                "error": f"{error.type}: {error.message}",
            },
        )
        report = TaskFailed(
            **common,
            started_at=started_at,
            finished_at=time.time(),
            error=error,
            retryable=retryable,
            timed_out=timed_out,
        )
        self._report(topology, topo.TASK_FAILED, report)

    def _call(self, msg: TaskMessage, ctx: Context) -> Any:
        task = self._find_task(msg)
        try:
            task_input = task.workflow.parse_input(msg.input)
        except ValidationError as exc:
            raise ValueError(
                f"input of run {msg.run_id} no longer matches the model: {exc}"
            ) from None
        if task.is_async:
            loop_thread = get_event_loop_thread()
            assert loop_thread is not None, "AsyncIO middleware is not installed"
            result = loop_thread.run_coroutine(
                _in_context(otel_context.get_current(), task.fn(task_input, ctx))
            )
        else:
            result = task.fn(task_input, ctx)
        return _jsonable(task, result)

    def _find_task(self, msg: TaskMessage) -> Task:
        wf = self.workflows.get(msg.workflow)
        task = wf.find(msg.task) if wf else None
        if task is None:
            raise LookupError(
                f"worker {self.name!r} has no task {msg.task!r} in workflow {msg.workflow!r}: "
                "is it running an older version of the code?"
            )
        return task

    # -- in-process mode --------------------------------------------------------------

    def start(self) -> None:
        """Register, then run a Dramatiq worker with ``slots`` threads in this process
        until SIGINT or SIGTERM."""
        self.register()
        rabbit = self.setup_broker()
        stop = threading.Event()
        previous = {
            s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)
        }
        worker = dramatiq.Worker(rabbit, worker_threads=self.slots)
        worker.start()
        logger.info("worker started", extra={"action": "worker_started", "worker": self.worker_id})
        try:
            stop.wait()
        finally:
            worker.stop()
            rabbit.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class ReportUndelivered(Exception):
    """An attempt's result could not be published, even on fresh connections: its
    message goes back to the queue rather than being lost."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"could not report attempt {message_id}")
        self.message_id = message_id


def _span_failed(exc: BaseException, outcome: str) -> None:
    """Record a failed attempt on its span: the exception as an event, and the status."""
    span = trace.get_current_span()
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute("roost.outcome", outcome)


async def _in_context(ctx: otel_context.Context, coro: Any) -> Any:
    """Run ``coro`` on Dramatiq's event loop thread inside the attempt's trace context,
    so a span the task starts is a child of the attempt's span, as in sync tasks."""
    token = otel_context.attach(ctx)
    try:
        return await coro
    finally:
        otel_context.detach(token)


def _jsonable(task: Task, value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"task {task.name!r} returned a value that is not JSON: {exc}") from None
    return value


def load_worker(target: str) -> Worker:
    """Import ``module:attr`` (or ``module``, finding its single Worker)."""
    module_name, _, attr = target.partition(":")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import worker module {module_name!r}: {exc}") from exc
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Worker):
            raise ConfigurationError(f"{target!r} is not a roost Worker (found {found!r})")
        return found
    workers = [v for v in vars(module).values() if isinstance(v, Worker)]
    if len(workers) != 1:
        raise ConfigurationError(
            f"module {module_name!r} defines {len(workers)} workers: name one as {module_name}:ATTR"
        )
    return workers[0]
