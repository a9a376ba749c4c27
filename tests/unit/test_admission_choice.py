"""The ratelimiter's choice of whom to admit: FIFO per key, all or nothing, fair, never
over the limit."""

from __future__ import annotations

from roost_core.engine.choose import KeyState, Waiter, choose

T = "tenant"


def _w(id: int, *needs: tuple[str, int]) -> Waiter:
    return Waiter(
        id=id,
        tenant_id=T,
        run_id=f"r{id}",
        task_run_id=f"t{id}",
        attempt=1,
        task="task",
        keys=[k for k, _ in needs],
        units=[u for _, u in needs],
        queue="q",
        message=b"",
    )


def _keys(**limits: tuple[int, int]) -> dict[tuple[str, str], KeyState]:
    return {(T, k): KeyState(limit, None, used) for k, (limit, used) in limits.items()}


def test_admits_in_order_up_to_the_free_units_and_counts_them() -> None:
    keys = _keys(a=(3, 1))
    decision = choose([_w(i, ("a", 1)) for i in range(1, 6)], keys)
    assert [w.id for w in decision.admitted] == [1, 2]
    assert keys[(T, "a")].in_use == 3


def test_fifo_per_key_a_big_request_at_the_head_is_not_overtaken() -> None:
    decision = choose([_w(1, ("a", 3)), _w(2, ("a", 1))], _keys(a=(3, 1)))
    assert decision.admitted == []  # 2 would fit, but 1 came first


def test_all_or_nothing_across_keys() -> None:
    keys = _keys(a=(1, 0), b=(1, 1))
    decision = choose([_w(1, ("a", 1), ("b", 1)), _w(2, ("a", 1))], keys)
    assert decision.admitted == []  # 1 cannot get b, so it takes no a; 2 waits behind it
    assert keys[(T, "a")].in_use == 0


def test_independent_keys_do_not_block_each_other() -> None:
    decision = choose(
        [_w(1, ("a", 1)), _w(2, ("a", 1)), _w(3, ("b", 1))], _keys(a=(1, 0), b=(1, 0))
    )
    assert sorted(w.id for w in decision.admitted) == [1, 3]


def test_keys_take_turns_starting_from_a_different_key_each_pass() -> None:
    waiters = [_w(i, ("shared", 1), ("a" if i % 2 else "b", 1)) for i in range(1, 5)]
    first = choose(waiters, _keys(shared=(1, 0), a=(9, 0), b=(9, 0)), rotation=0)
    assert [w.id for w in first.admitted] == [1]  # FIFO on the shared key decides


def test_a_request_that_can_never_fit_is_reported_not_left_waiting() -> None:
    decision = choose([_w(1, ("a", 5)), _w(2, ("gone", 1)), _w(3, ("a", 1))], _keys(a=(3, 0)))
    reasons = {w.id: why for w, why in decision.impossible}
    assert "needs 5 units" in reasons[1] and "limit is now 3" in reasons[1]
    assert "no longer exists" in reasons[2]
    assert [w.id for w in decision.admitted] == [3]


def test_a_lowered_limit_admits_nothing_until_usage_falls_below_it() -> None:
    decision = choose([_w(1, ("a", 1))], _keys(a=(2, 3)))
    assert decision.admitted == [] and decision.impossible == []
