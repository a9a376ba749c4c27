"""Warnings the api attaches to its answers, raised to the caller as RoostWarning.

A trigger of a workflow no live worker serves is accepted (workers may scale up from
zero) but its response carries a ``warning`` (issue #20). The SDK turns it into
``warnings.warn(RoostWarning(...))`` at most once per workflow per client per
``EVERY`` seconds, so a loop of triggers warns once, not once per run; Python's own
warning filters apply on top (by default, once per calling line).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from typing import Any

from roost._errors import RoostWarning

# Frames in the SDK itself are skipped, so the warning points at the caller's line
# however deep the call went (wf.run -> workflows.trigger -> here).
_SDK_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _caller_stacklevel() -> int:
    level = 1
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_SDK_DIR):
        level += 1
        frame = frame.f_back  # type: ignore[assignment]
    return level


class Notices:
    """Per-client memory of which workflows' warnings were raised, and when."""

    EVERY = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warned_at: dict[str, float] = {}

    def raise_from(self, workflow: str, body: Any) -> None:
        """Warn with the ``warning`` of the api's answer ``body``, if it has one and
        ``workflow``'s was not raised in the last ``EVERY`` seconds."""
        message = body.get("warning") if isinstance(body, dict) else None
        if not message:
            return
        now = time.monotonic()
        with self._lock:
            last = self._warned_at.get(workflow)
            if last is not None and now - last < self.EVERY:
                return
            self._warned_at[workflow] = now
        warnings.warn(RoostWarning(str(message)), stacklevel=_caller_stacklevel())
