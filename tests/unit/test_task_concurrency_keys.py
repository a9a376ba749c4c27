"""Task-level concurrency (issue #21) as a task declares it and as its attempts are
admitted: a key per group of each expression, all taken at once."""

from __future__ import annotations

import json

import pytest

from roost import Concurrency, InvalidDefinitionError, Roost
from roost_core.admission import unpack_run
from roost_core.dispatch import attempt, task_group_key
from roost_core.outbox import DynamicKey
from roost_core.topology import Topology
from roost_core.wire import TaskDefinition


def _task() -> TaskDefinition:
    return TaskDefinition.model_validate(
        {
            "name": "call_model",
            "rate_limits": [{"key": "gpu"}],
            "concurrency": [
                {"expression": "input.user", "max_runs": 2},
                {"expression": "'all'", "max_runs": 8},
            ],
        }
    )


def test_an_attempt_waits_for_a_unit_of_each_group_and_of_its_rate_limits() -> None:
    message, _ = attempt(
        Topology("t"),
        _task(),
        tenant_id="t1",
        workflow="wf",
        run_id="r1",
        task_run_id="tr1",
        attempt=1,
        run_input={"user": "alice"},
    )
    assert message.admission is not None
    assert message.admission.keys == (
        "gpu",
        "task-concurrency:wf:call_model:0:alice",
        "task-concurrency:wf:call_model:1:all",
    )
    assert message.admission.units == (1, 1, 1)
    assert message.admission.dynamic == (
        ("task-concurrency:wf:call_model:0:alice", 2, None, "wait"),
        ("task-concurrency:wf:call_model:1:all", 8, None, "wait"),
    )


def test_a_long_group_key_is_hashed_and_stays_a_valid_key() -> None:
    key = task_group_key("wf", "t", 0, "x" * 300)
    assert len(key) <= 200 and key.startswith("task-concurrency:wf:t:")
    assert key != task_group_key("wf", "t", 0, "y" * 300)


def test_a_task_declares_its_concurrency_with_any_strategy() -> None:
    wf = Roost(token="t").workflow("wf")

    @wf.task(
        concurrency=[
            Concurrency("input.user", max_runs=2, strategy="cancel_newest"),
            Concurrency("'all'", max_runs=8, strategy="cancel_in_progress"),
        ]
    )
    def ok(input: dict, ctx: object) -> None: ...

    [declared] = wf.definition().tasks
    assert [(c.expression, c.strategy) for c in declared.concurrency] == [
        ("input.user", "cancel_newest"),
        ("'all'", "cancel_in_progress"),
    ]
    with pytest.raises(InvalidDefinitionError, match="'cancel_later'"):
        wf.task(concurrency=[Concurrency("input.user", strategy="cancel_later")])  # type: ignore[arg-type]
    with pytest.raises(InvalidDefinitionError, match="twice"):
        wf.task(concurrency=[Concurrency("input.user"), Concurrency("input.user")])


def test_a_definition_without_task_concurrency_keeps_its_version() -> None:
    plain = {"name": "wf", "tasks": [{"name": "a"}]}
    from roost_core.wire import WorkflowDefinition

    before = WorkflowDefinition.model_validate(plain).version_hash()
    with_empty = {"name": "wf", "tasks": [{"name": "a", "concurrency": []}]}
    assert WorkflowDefinition.model_validate(with_empty).version_hash() == before


def test_each_group_key_carries_its_strategy_for_when_it_is_full() -> None:
    task = TaskDefinition.model_validate(
        {
            "name": "call_model",
            "concurrency": [
                {"expression": "input.user", "max_runs": 1, "strategy": "cancel_newest"},
                {"expression": "'all'", "max_runs": 8, "strategy": "cancel_in_progress"},
                {"expression": "input.org", "max_runs": 3},
            ],
        }
    )
    message, _ = attempt(
        Topology("t"),
        task,
        tenant_id="t1",
        workflow="wf",
        run_id="r1",
        task_run_id="tr1",
        attempt=1,
        run_input={"user": "alice", "org": "acme"},
    )
    assert message.admission is not None
    assert [(d.key, d.limit, d.on_full) for d in message.admission.dynamic] == [
        ("task-concurrency:wf:call_model:0:alice", 1, "cancel_newest"),
        ("task-concurrency:wf:call_model:1:all", 8, "cancel_in_progress"),
        ("task-concurrency:wf:call_model:2:acme", 3, "wait"),
    ]


def test_a_run_waiter_packed_before_strategies_unpacks_its_keys_as_waiting() -> None:
    packed = [
        {
            "exchange": "",
            "routing_key": "q",
            "body": "",
            "admission": {
                "tenant_id": "t1",
                "run_id": "r1",
                "task_run_id": "tr1",
                "attempt": 1,
                "task": "a",
                "keys": ["k"],
                "units": [1],
                "dynamic": [["k", 2, None]],  # three fields, as before issue #21's strategies
            },
        }
    ]
    [message] = unpack_run(json.dumps(packed).encode())
    assert message.admission is not None
    assert message.admission.dynamic == (DynamicKey("k", 2, None, "wait"),)
