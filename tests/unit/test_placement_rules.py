"""Placement decisions (issue #21): labels matched, scored, sticky hard and soft."""

from __future__ import annotations

import pytest

from roost_core.engine.placement import Candidate, place
from roost_core.labels import DesiredLabel, satisfies, score


def _w(id: str, load: int = 0, slots: int = 4, **labels: str | int | float) -> Candidate:
    return Candidate(id, slots, load, labels)


@pytest.mark.parametrize(
    ("comparator", "value", "have", "met"),
    [
        ("==", "eu", "eu", True),
        ("==", "eu", "us", False),
        ("==", 64, 64.0, True),  # numbers compare as numbers
        ("==", "64", 64, False),  # a string is not a number
        ("!=", "eu", "us", True),
        ("!=", "eu", None, True),  # a missing label differs from anything
        ("==", "eu", None, False),
        (">=", 32, 64, True),
        (">=", 32, 16, False),
        ("<", 10, 9.5, True),
        (">", 1, "2", False),  # an order comparison never meets a string
    ],
)
def test_a_label_is_met_by_its_comparator(
    comparator: str, value: str | int, have: str | int | float | None, met: bool
) -> None:
    want = DesiredLabel(value=value, comparator=comparator)  # type: ignore[arg-type]
    assert satisfies(want, have) is met


def test_an_order_comparator_refuses_a_string_value() -> None:
    with pytest.raises(ValueError, match="compares numbers, not the string 'big'"):
        DesiredLabel(value="big", comparator=">=")


def test_score_sums_the_weights_met_and_a_missing_required_label_excludes() -> None:
    desired = {
        "region": DesiredLabel(value="eu", required=True),
        "memory_gb": DesiredLabel(value=32, comparator=">=", weight=10),
        "gpu": DesiredLabel(value="a100", weight=3),
    }
    assert score(desired, {"region": "eu", "memory_gb": 64, "gpu": "a100"}) == 13
    assert score(desired, {"region": "eu", "memory_gb": 16}) == 0
    assert score(desired, {"region": "us", "memory_gb": 64}) is None


def test_labels_pick_the_best_score_then_the_least_loaded() -> None:
    desired = {
        "region": DesiredLabel(value="eu", required=True),
        "memory_gb": DesiredLabel(value=32, comparator=">=", weight=10),
    }
    workers = [
        _w("us-big", region="us", memory_gb=128),
        _w("eu-small", region="eu", memory_gb=8),
        _w("eu-big-busy", load=3, region="eu", memory_gb=64),
        _w("eu-big-idle", load=1, region="eu", memory_gb=64),
    ]
    chosen = place("wf", desired, None, None, workers)
    assert chosen.worker_id == "eu-big-idle"
    assert chosen.reason == "labels: score 10/10 on eu-big-idle"


def test_no_worker_with_a_required_label_waits_and_says_why() -> None:
    desired = {"gpu": DesiredLabel(value="h100", required=True)}
    chosen = place("wf", desired, None, None, [_w("a", gpu="a100"), _w("b")])
    assert chosen.waits and chosen.worker_id is None
    assert chosen.reason == (
        "waits for a worker with gpu == 'h100': a lacks gpu == 'h100'; b lacks gpu == 'h100'"
    )
    nobody = place("wf", desired, None, None, [])
    assert nobody.waits
    assert nobody.reason == "waits for a worker of workflow 'wf' with gpu == 'h100': none is live"


def test_a_plain_task_of_a_plain_run_goes_to_the_shared_queue() -> None:
    chosen = place("wf", {}, None, None, [_w("a")])
    assert chosen.worker_id is None and not chosen.waits and chosen.reason is None


def test_a_sticky_run_starts_on_the_least_loaded_worker() -> None:
    chosen = place("wf", {}, "hard", None, [_w("a", load=2), _w("b", load=1)])
    assert chosen.worker_id == "b"
    waiting = place("wf", {}, "soft", None, [])
    assert waiting.waits and waiting.reason == "no live worker serves workflow 'wf'"


def test_hard_sticky_stays_even_when_busy_and_fails_when_its_worker_is_gone() -> None:
    busy = place("wf", {}, "hard", "a", [_w("a", load=9), _w("b")])
    assert busy.worker_id == "a" and busy.reason == "sticky (hard) to a"
    gone = place("wf", {}, "hard", "a", [_w("b")])
    assert gone.worker_id is None and gone.error is not None
    assert "sticky (hard) to worker a, which is gone" in gone.error


def test_soft_sticky_falls_back_when_its_worker_is_gone_or_busy() -> None:
    assert place("wf", {}, "soft", "a", [_w("a"), _w("b")]).worker_id == "a"
    busy = place("wf", {}, "soft", "a", [_w("a", load=4), _w("b")])
    assert busy.worker_id is None and not busy.waits
    assert busy.reason == "sticky (soft) worker a busy: any worker"
    gone = place("wf", {}, "soft", "a", [_w("b", load=1), _w("c")])
    assert (gone.worker_id, gone.moved) == ("c", True)  # the run sticks to c from now on
    assert gone.reason == "sticky (soft): worker a gone, moved to c"
    nowhere = place("wf", {}, "soft", "a", [])
    assert nowhere.waits and not nowhere.moved
    assert nowhere.reason == "sticky (soft): worker a gone; no live worker serves workflow 'wf'"
    labelled = place(
        "wf",
        {"gpu": DesiredLabel(value="a100", required=True)},
        "soft",
        "a",
        [_w("b", gpu="a100")],
    )
    assert (labelled.worker_id, labelled.moved) == ("b", True)
    assert labelled.reason == "sticky (soft): worker a gone, moved to b"


def test_soft_sticky_lacking_a_required_label_goes_elsewhere_this_once() -> None:
    desired = {"gpu": DesiredLabel(value="a100", required=True)}
    chosen = place("wf", desired, "soft", "a", [_w("a"), _w("b", gpu="a100")])
    assert (chosen.worker_id, chosen.moved) == ("b", False)
    assert chosen.reason == (
        "sticky (soft) worker a missing a required label; labels: score 0/0 on b"
    )


def test_a_free_fitting_worker_beats_a_busy_better_scoring_one() -> None:
    desired = {"memory_gb": DesiredLabel(value=32, comparator=">=", weight=10)}
    workers = [_w("big", load=4, memory_gb=64), _w("small", memory_gb=8)]
    assert place("wf", desired, None, None, workers).worker_id == "small"
    all_busy = [_w("big", load=4, memory_gb=64), _w("small", load=4, memory_gb=8)]
    assert place("wf", desired, None, None, all_busy).worker_id == "big"
