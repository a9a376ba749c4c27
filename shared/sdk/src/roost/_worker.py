"""The worker runtime: a real Dramatiq worker whose actors run Roost tasks.

Each workflow gets one Dramatiq actor on its own queue; one Dramatiq message is one task
attempt (roost._attempt runs it). The actor reports ``succeeded`` or ``failed`` to the
events exchange with a publisher confirm, before Dramatiq acknowledges the message
(``started`` goes out only for tasks still running after a short delay; see
``roost._reporter``). A worker that dies mid-task never acknowledges, so RabbitMQ hands the
attempt to another worker. Workers never touch PostgreSQL.

The actor never raises into Dramatiq: a task's failure is reported (the engine applies
its retry policy), and a report that cannot be published, even after reconnecting, puts
the message back on its queue. Dramatiq's own retries, which end in its dead-letter
queue, are off: only a message that is not a task message at all ends there.

What happens around each message is Dramatiq middleware that ``Worker.setup_broker``
composes: ``roost._delivery.Delivery`` (which messages this process holds; early acks
and requeues) and ``roost._heartbeats.Heartbeats`` (heartbeats, draining and stopping,
long tasks' early acks), beside Dramatiq's own ``AsyncIO`` and ``TimeLimit``. What
happens around each attempt inside the actor is attempt middleware (roost._middleware)
that it composes too, in one list: deadlines (roost._deadlines), the long-task watch
(roost._delivery), the attempt's span (roost._spans), its reports (roost._outcomes) and
cancellation (roost._cancellation).
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import AsyncIO, Retries, TimeLimit

from roost._attempt import AttemptRunner
from roost._cancellation import Cancellation
from roost._control import ControlListener
from roost._deadlines import Deadlines
from roost._delivery import Delivery, LongTasks
from roost._errors import ConfigurationError, InvalidDefinitionError, TaskCancelledError
from roost._heartbeats import Heartbeats, Identity
from roost._middleware import AttemptMiddleware
from roost._outcomes import Outcomes
from roost._reports import AttemptReports, ReportUndelivered
from roost._runs import Runs
from roost._settings import ClientSettings
from roost._spans import Spans
from roost._standalone import StandaloneTask, workflow_of
from roost._worker_queue import FastJSONEncoder, RoostRabbitmqBroker
from roost._workflow import Workflow
from roost_core import broker as core_broker
from roost_core import topology as topo
from roost_core.wire import WORKER_LABELS_MAX, WORKER_VERSION_MAX, LabelValue, label_problem


class WorkerClients(Protocol):
    """What a worker needs of its ``Roost`` client: its settings, the runs client (to
    learn of cancels made while it was away), and ``close`` before a fork."""

    @property
    def settings(self) -> ClientSettings: ...

    @property
    def runs(self) -> Runs: ...

    def close(self) -> None: ...


logger = logging.getLogger("roost.worker")

# Dramatiq's own time limit (10 minutes by default) must not cut Roost tasks short.
_DRAMATIQ_TIME_LIMIT_MS = 7 * 24 * 3600 * 1000


class Worker:
    """Serves the tasks of ``workflows``. ``start()`` blocks; or run it from a shell
    with ``roost worker module:attr --processes N --threads M``.

    ``version``: the application's version, shown with each worker process
    (``roost workers list``, the dashboard); default ``ROOST_WORKER_VERSION``, else none.

    ``labels``: what each of its processes says it is (``{"gpu": "a100", "memory_gb":
    64}``), shown with it like its version; :meth:`set_labels` changes them at run time.
    Not yet used to place tasks."""

    def __init__(
        self,
        roost: WorkerClients,
        name: str,
        workflows: Sequence[Workflow | StandaloneTask[Any]],
        slots: int = 8,
        version: str | None = None,
        labels: Mapping[str, LabelValue] | None = None,
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
        # A standalone task (``@roost.task()``) is served as the one-task workflow it is.
        self.workflows = {wf.name: wf for wf in map(workflow_of, workflows)}
        self.slots = slots
        self.version = version.strip() if version is not None else roost.settings.worker_version
        self._labels_lock = threading.Lock()
        self._labels = _checked_labels(name, labels or {})
        self._id_of_pid: tuple[int, str] = (0, "")
        self.broker: RabbitmqBroker | None = None
        self.control: ControlListener | None = None
        self.heartbeats: Heartbeats | None = None

    @property
    def worker_id(self) -> str:
        # Asked for every attempt: the host's name is a system call, so it is made once
        # per process (each forked worker process has its own pid, and so its own id).
        pid = os.getpid()
        if self._id_of_pid[0] != pid:
            self._id_of_pid = (pid, f"{self.name}@{socket.gethostname()}:{pid}")
        return self._id_of_pid[1]

    @property
    def labels(self) -> dict[str, LabelValue]:
        """This process's labels now (a copy)."""
        with self._labels_lock:
            return dict(self._labels)

    def set_labels(self, labels: Mapping[str, LabelValue]) -> None:
        """Replace this process's labels with ``labels`` (checked as at declaration:
        InvalidDefinitionError naming a bad one, and nothing changes). Thread-safe; call
        it from a task or a startup hook. Under ``roost worker --processes N`` each
        process imported the Worker for itself, so this changes the labels of the
        process it runs in only. Its next heartbeat, sent at once, carries them."""
        checked = _checked_labels(self.name, labels)
        with self._labels_lock:
            self._labels = checked
        if self.heartbeats is not None:
            self.heartbeats.reporter.beat_now()  # not waited for

    def _identity(self) -> Identity:
        """What this process's heartbeats say of it, besides its state and attempts."""
        return Identity(
            lambda: self.worker_id,
            self.name,
            sorted(self.workflows),
            self.slots,
            self.version,
            lambda: self.labels,
        )

    def register(self) -> None:
        """Send every workflow definition to the api (a new version if it changed)."""
        for wf in self.workflows.values():
            wf.register()

    def setup_broker(self) -> RabbitmqBroker:
        """Create this process's Dramatiq broker with one actor per workflow, and start
        heart-beating and listening for cancellations."""
        settings = self.roost.settings
        topology = topo.Topology(settings.namespace)
        connection = core_broker.connect(settings.broker_url)
        try:
            topo.declare_core(connection.channel(), topology)
        finally:
            connection.close()
        # A short AMQP heartbeat: if this process freezes, RabbitMQ closes its connection
        # within ~2 heartbeats and hands its unacknowledged attempts to other workers.
        rabbit = RoostRabbitmqBroker(
            url=core_broker.with_heartbeat(settings.broker_url, settings.amqp_heartbeat_seconds),
            confirm_delivery=True,
            max_priority=topo.MAX_PRIORITY,  # runs' priorities (docs/placement.md)
            # Of Dramatiq's default middleware, only what Roost's messages use: TimeLimit
            # (an execution timeout is the message's time_limit) and Retries (with
            # max_retries=0 it dead-letters a message whose actor raised instead of
            # acknowledging it). AgeLimit, Callbacks, Pipelines and ShutdownNotifications
            # read options Roost never sets, yet each ran its hooks around every
            # message: ~5% of a worker's CPU (issue #17).
            middleware=[TimeLimit(), Retries()],
        )
        self.control = ControlListener(
            settings.broker_url, topology, settings.cancel_grace_seconds, self._recent_cancels
        )
        control = self.control
        delivery = Delivery()
        self.heartbeats = Heartbeats(self._identity(), settings, delivery, control.running)
        rabbit.add_middleware(AsyncIO())
        rabbit.add_middleware(delivery)
        rabbit.add_middleware(self.heartbeats)
        dramatiq.set_broker(rabbit)
        dramatiq.set_encoder(FastJSONEncoder())
        reports = AttemptReports(settings.broker_url, topology, lambda: self.worker_id)
        # Around each attempt, outermost first: before_attempt runs down this list and
        # after_attempt back up it. Deadlines first, so that an attempt too late to start
        # fails before anything else happens (no watch, no span, no `started`). The
        # long-task watch and the span then enclose everything the attempt does,
        # reporting included (a report slow to go out still counts as running; a report
        # that fails is recorded on the span). Outcomes before Cancellation, so that the
        # attempt is unregistered from cancel interrupts before its result goes out,
        # and a cancelled attempt's `started` report is withdrawn.
        middlewares: list[AttemptMiddleware] = [
            Deadlines(),
            LongTasks(delivery),
            Spans(),
            Outcomes(reports, self.heartbeats.reporter),
            Cancellation(control),
        ]
        runner = AttemptRunner(
            self.name, self.workflows, lambda: self.worker_id, topology, middlewares
        )
        for wf in self.workflows.values():
            self._make_actor(rabbit, topology, wf, runner, delivery)
        # This process's own queue: sticky and labelled tasks the engine placed here.
        rabbit.declare_queue(topology.worker_queue(self.worker_id))
        self.heartbeats.reporter.start()  # heartbeats from now on
        control.start()
        self.broker = rabbit
        return rabbit

    @staticmethod
    def _make_actor(
        rabbit: RabbitmqBroker,
        topology: topo.Topology,
        wf: Workflow,
        runner: AttemptRunner,
        delivery: Delivery,
    ) -> None:
        def run_task(message: dict[str, Any]) -> None:
            try:
                runner.execute(message)
            except TaskCancelledError:
                # A cancel interrupt may land just after the task returned: its run has
                # ended CANCELLED, so there is nothing to report and nothing to retry.
                pass
            except ReportUndelivered as exc:
                requeued = delivery.requeue_current()
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
        return self.roost.runs.cancelled_attempts(since=time.time() - 86400)

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


def _checked_labels(worker: str, labels: Mapping[str, LabelValue]) -> dict[str, LabelValue]:
    """``labels`` as a dict of its own, or InvalidDefinitionError naming the first bad
    one (roost_core.wire.label_problem: keys as run metadata's, values strings of at most
    200 characters or finite numbers, at most 32 of them)."""
    if not isinstance(labels, Mapping):
        raise InvalidDefinitionError(
            f"worker {worker!r}: labels must be a mapping of names to values, not {labels!r}"
        )
    copied = dict(labels)  # checked as kept, whatever the caller does with its own
    if len(copied) > WORKER_LABELS_MAX:
        raise InvalidDefinitionError(
            f"worker {worker!r}: at most {WORKER_LABELS_MAX} labels, not {len(copied)}"
        )
    for key, value in copied.items():
        problem = label_problem(key, value)
        if problem is not None:
            raise InvalidDefinitionError(f"worker {worker!r}: {problem}")
    return copied


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
