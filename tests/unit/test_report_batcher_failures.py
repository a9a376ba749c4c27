"""The report batcher never leaves a worker thread waiting forever: a bug while sending
gives the batch up (its results' messages go back to their queues), and a batcher that
has stopped refuses new reports at once."""

from __future__ import annotations

from typing import Any

import pytest

from roost import _report_batcher
from roost._report_batcher import ReportBatcher
from roost_core.topology import Topology


class _BuggyPublisher:
    """Fails as no broker would: a bug, not a lost connection."""

    sent: list[Any] = []

    def __init__(self, url: str) -> None:
        self.calls = 0

    def publish(self, message: Any) -> None:
        self.calls += 1
        if self.calls == 1:
            raise TypeError("a bug")
        _BuggyPublisher.sent.append(message)

    def close(self) -> None:
        pass


def test_a_bug_while_sending_gives_the_batch_up_and_the_batcher_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_report_batcher, "Publisher", _BuggyPublisher)
    batcher = ReportBatcher("amqp://unused", Topology("ns"))
    assert batcher.submit(b'{"kind":"succeeded"}', wait=True) is False
    assert batcher.submit(b'{"kind":"succeeded"}', wait=True) is True  # the next one goes
    assert len(_BuggyPublisher.sent) == 1
    batcher.stop()


def test_a_stopped_batcher_refuses_reports_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_report_batcher, "Publisher", _BuggyPublisher)
    batcher = ReportBatcher("amqp://unused", Topology("ns"))
    batcher.stop()
    assert batcher.submit(b"{}", wait=True) is False
