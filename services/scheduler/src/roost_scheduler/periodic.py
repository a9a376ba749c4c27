"""A job a scheduler replica runs every few seconds on a thread of its own (table
maintenance, retention, the lost-message safety net), so that it never holds up the
consumer. A lost database or broker is logged and the job tried again at the next tick."""

from __future__ import annotations

import logging
import threading

import psycopg

from roost_core.service import RECOVERABLE

logger = logging.getLogger(__name__)


class Periodic:
    """Subclasses set ``name`` and implement :meth:`_run`; :meth:`enabled` says whether
    the job runs at all."""

    name = "periodic"

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)

    def enabled(self) -> bool:
        return self._interval > 0

    def start(self) -> None:
        if self.enabled():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._run()
            except (psycopg.Error, *RECOVERABLE):
                logger.warning(
                    f"{self.name} failed; will retry",
                    extra={"action": f"{self.name}_failed"},
                    exc_info=True,
                )

    def _run(self) -> None:
        raise NotImplementedError
