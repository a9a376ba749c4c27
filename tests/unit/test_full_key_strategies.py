"""What a full task-level concurrency key does to the attempts that do not fit (issue
#21), decided on in-memory rows: cancel_newest cancels the newcomer, cancel_in_progress
the oldest; all keys of an attempt count; deciding again cancels nothing twice; what
is left never over-admits."""

from __future__ import annotations

from roost_core.engine.choose import KeyState, Waiter, choose
from roost_core.engine.strategies import Holder, make_room
from roost_core.outbox import OnFull

T = "tenant"


def _w(id: int, *keys: str, task: str = "call_model") -> Waiter:
    return Waiter(
        id=id,
        tenant_id=T,
        run_id=f"r{id}",
        task_run_id=f"t{id}",
        attempt=1,
        task=task,
        keys=list(keys),
        units=[1] * len(keys),
        queue="q",
        message=b"",
    )


def _h(id: int, key: str) -> Holder:
    return Holder(T, key, f"r{id}", f"t{id}", 1, "call_model", 1)


def _keys(**specs: tuple[int, int, OnFull]) -> dict[tuple[str, str], KeyState]:
    return {
        (T, k): KeyState(limit, None, used, on_full) for k, (limit, used, on_full) in specs.items()
    }


def test_cancel_newest_cancels_what_does_not_fit_and_names_the_full_key() -> None:
    keys = _keys(u1=(1, 1, "cancel_newest"), u2=(1, 0, "cancel_newest"))
    waiters = [_w(1, "u1"), _w(2, "u1"), _w(3, "u2"), _w(4, "u2")]
    out = make_room(waiters, keys, {})
    assert [w.id for w, _ in out.waiters] == [1, 2, 4]  # u1 is held; u2 has room for 3
    assert out.holders == []
    why = dict((w.id, r) for w, r in out.waiters)[1]
    assert why == (
        "task 'call_model' was cancelled: concurrency key 'u1' is full"
        " (1 of 1 running or waiting; cancel_newest)"
    )


def test_cancel_newest_counts_earlier_waiters_blocked_on_another_key() -> None:
    # 1 fits "c" but waits for "gpu"; it keeps its place on "c", so 2 finds "c" full.
    keys = _keys(c=(1, 0, "cancel_newest"), gpu=(1, 1, "wait"))
    out = make_room([_w(1, "c", "gpu"), _w(2, "c")], keys, {})
    assert [w.id for w, _ in out.waiters] == [2]
    assert choose([_w(1, "c", "gpu")], keys).admitted == []  # and 1 still waits


def test_an_attempt_with_one_full_cancel_newest_key_is_cancelled_whatever_its_others() -> None:
    keys = _keys(user=(2, 0, "wait"), all=(1, 1, "cancel_newest"))
    out = make_room([_w(1, "user", "all")], keys, {})
    assert [w.id for w, _ in out.waiters] == [1]
    assert "'all' is full" in out.waiters[0][1]


def test_cancel_in_progress_cancels_the_oldest_holder_and_the_newcomer_waits_for_it() -> None:
    keys = _keys(k=(1, 1, "cancel_in_progress"))
    out = make_room([_w(2, "k")], keys, {(T, "k"): [_h(1, "k")]})
    assert out.waiters == []
    [(holder, why)] = out.holders
    assert holder.task_run_id == "t1"
    assert why == (
        "task 'call_model' was cancelled: a newer attempt took its place in concurrency"
        " key 'k' (at most 1; cancel_in_progress)"
    )
    # The holder keeps its unit until its attempt has ended: never over-admitted.
    assert choose([_w(2, "k")], keys).admitted == []


def test_cancel_in_progress_keeps_the_newest_and_cancels_older_waiters_and_holders() -> None:
    keys = _keys(k=(2, 2, "cancel_in_progress"))
    holders = {(T, "k"): [_h(1, "k"), _h(2, "k")]}
    out = make_room([_w(3, "k"), _w(4, "k"), _w(5, "k")], keys, holders)
    assert [h.task_run_id for h, _ in out.holders] == ["t1", "t2"]
    assert [w.id for w, _ in out.waiters] == [3]  # 4 and 5 are the newest two


def test_a_holder_being_cancelled_is_not_cancelled_again() -> None:
    # The pass that cancelled 1 marked its hold: it is no longer given as a holder, but
    # still counts in use. Deciding again on what is left cancels nothing.
    keys = _keys(k=(1, 1, "cancel_in_progress"))
    out = make_room([_w(2, "k")], keys, {(T, "k"): []})
    assert out.waiters == [] and out.holders == []


def test_deciding_again_on_what_a_pass_left_cancels_nothing() -> None:
    keys = _keys(c=(2, 1, "cancel_newest"), gpu=(1, 1, "wait"))
    first = make_room([_w(1, "c", "gpu"), _w(2, "c"), _w(3, "c")], keys, {})
    left = [w for w in [_w(1, "c", "gpu"), _w(2, "c"), _w(3, "c")] if w.id not in first.waiter_ids]
    assert [w.id for w in left] == [1]
    assert make_room(left, keys, {}).waiters == []


def test_a_waiter_cancelled_in_progress_gives_back_its_place_on_a_cancel_newest_key() -> None:
    # 1 holds p's only place as a waiter; 2 arrives on p, cancelling 1, whose place on c
    # is then free for 3.
    keys = _keys(p=(1, 0, "cancel_in_progress"), c=(1, 0, "cancel_newest"))
    out = make_room([_w(1, "p", "c"), _w(2, "p"), _w(3, "c")], keys, {})
    assert [w.id for w, _ in out.waiters] == [1]


def test_an_attempt_holding_two_in_progress_keys_is_cancelled_once() -> None:
    keys = _keys(a=(1, 1, "cancel_in_progress"), b=(1, 1, "cancel_in_progress"))
    holders = {(T, "a"): [_h(1, "a")], (T, "b"): [_h(1, "b")]}
    out = make_room([_w(2, "a", "b")], keys, holders)
    assert [h.task_run_id for h, _ in out.holders] == ["t1"]


def test_keys_that_wait_and_impossible_waiters_are_left_to_choose() -> None:
    keys = _keys(k=(1, 1, "wait"), small=(1, 0, "cancel_newest"))
    big = Waiter(9, T, "r9", "t9", 1, "x", ["small"], [2], "q", b"")
    out = make_room([_w(1, "k"), _w(2, "k"), big, _w(3, "gone")], keys, {})
    assert out.waiters == [] and out.holders == []
    assert [w.id for w, _ in choose([big, _w(3, "gone")], keys).impossible] == [3, 9]
