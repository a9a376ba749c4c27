"""The safety net's decision (roost_scheduler.redispatch.judge): which QUEUED attempts
no live worker holds are taken for lost, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from roost_scheduler.redispatch import Candidate, judge

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
CONFIRM = timedelta(seconds=5)
A = Candidate("a", 1, "q1")
B = Candidate("b", 2, "q2")


def test_a_first_sighting_is_only_suspected() -> None:
    lost, suspects = judge([A], set(), {}, T0, T0, CONFIRM)
    assert lost == []
    assert suspects == {A.key: T0}


def test_a_suspect_is_lost_once_every_live_worker_beat_after_the_confirmation_time() -> None:
    earlier = {A.key: T0}
    now = T0 + timedelta(seconds=10)
    lost, suspects = judge([A], set(), earlier, now, T0 + CONFIRM, CONFIRM)
    assert lost == [A]
    assert suspects == {}


def test_a_suspect_waits_while_some_live_worker_has_not_beaten_since() -> None:
    earlier = {A.key: T0}
    now = T0 + timedelta(seconds=10)
    lost, suspects = judge([A], set(), earlier, now, T0 + timedelta(seconds=4), CONFIRM)
    assert lost == []
    assert suspects == {A.key: T0}  # the suspicion keeps its first time


def test_with_no_live_worker_at_all_a_suspect_is_lost_at_the_next_look() -> None:
    lost, _ = judge([A], set(), {A.key: T0}, T0 + timedelta(seconds=1), None, CONFIRM)
    assert lost == [A]


def test_an_attempt_on_a_busy_queue_is_neither_lost_nor_suspected() -> None:
    earlier = {A.key: T0, B.key: T0}
    lost, suspects = judge([A, B], {"q1"}, earlier, T0 + CONFIRM * 3, None, CONFIRM)
    assert lost == [B]
    assert suspects == {}


def test_a_suspect_no_longer_a_candidate_is_forgotten() -> None:
    lost, suspects = judge([B], set(), {A.key: T0}, T0 + CONFIRM, None, CONFIRM)
    assert lost == []
    assert suspects == {B.key: T0 + CONFIRM}


def test_a_new_attempt_number_is_a_new_suspect() -> None:
    again = Candidate("a", 2, "q1")
    lost, suspects = judge([again], set(), {A.key: T0}, T0 + CONFIRM * 3, None, CONFIRM)
    assert lost == []
    assert suspects == {again.key: T0 + CONFIRM * 3}
