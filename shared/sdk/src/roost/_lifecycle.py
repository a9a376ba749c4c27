"""A worker process tells the engine at once when it begins to stop, and when it has.

Dramatiq stops a worker (``roost worker`` on SIGTERM or SIGINT, in each of its
processes; ``Worker.start`` on the same signals) in one sequence: it emits
``before_worker_shutdown``, stops its worker threads (each finishes the task it runs
and takes no other), then its consumers (what they had prefetched goes back to the
queue), and emits ``after_worker_shutdown``. The first hook makes the process
*draining*, the second *stopped*; the worker sends a heartbeat saying so each time,
without waiting for the next periodic one (see ``Worker._drain`` and ``Worker._stop``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dramatiq.middleware import Middleware


class ShutdownBeats(Middleware):
    """Calls ``draining`` as Dramatiq begins to stop this process's worker, and
    ``stopped`` once it has stopped."""

    def __init__(self, draining: Callable[[], None], stopped: Callable[[], None]) -> None:
        self._draining = draining
        self._stopped = stopped

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self._draining()

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self._stopped()
