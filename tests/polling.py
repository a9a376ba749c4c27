"""Waiting in tests for what real processes do in their own time: ``poll`` asks a
question until it has an answer, or fails the test saying what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(find: Callable[[], T | None], timeout: float, what: str, every: float = 0.1) -> T:
    """``find()``'s first truthy answer, asked every ``every`` s for up to ``timeout`` s;
    AssertionError naming ``what`` if none came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
