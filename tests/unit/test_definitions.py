"""Bad workflow definitions are rejected the moment they are made, with a clear message."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import roost
from roost import Context, Roost
from roost_core import dag
from roost_core.wire import TaskDefinition, WorkflowDefinition


@pytest.fixture
def client() -> Roost:
    return Roost(api_url="http://127.0.0.1:1", token="unused")


def test_a_duplicate_task_name_raises_at_once(client: Roost) -> None:
    wf = client.workflow("dup")

    @wf.task()
    def a(input: dict, ctx: Context) -> None: ...

    with pytest.raises(roost.InvalidDefinitionError, match="already has a task named 'a'"):

        @wf.task(name="a")
        def other(input: dict, ctx: Context) -> None: ...


def test_a_parent_from_another_workflow_raises_naming_both(client: Roost) -> None:
    one, two = client.workflow("one"), client.workflow("two")

    @one.task()
    def first(input: dict, ctx: Context) -> None: ...

    with pytest.raises(
        roost.InvalidDefinitionError, match="parent 'first' of another workflow \\('one'\\)"
    ):

        @two.task(parents=[first])
        def second(input: dict, ctx: Context) -> None: ...


def test_an_unknown_parent_name_raises(client: Roost) -> None:
    wf = client.workflow("unknown-parent")
    with pytest.raises(roost.InvalidDefinitionError, match="unknown parent 'ghost'"):

        @wf.task(parents=["ghost"])
        def child(input: dict, ctx: Context) -> None: ...


def test_a_bad_workflow_name_raises_naming_it(client: Roost) -> None:
    with pytest.raises(roost.InvalidDefinitionError, match="'has space'"):
        client.workflow("has space")


def test_a_cycle_is_reported_with_its_path() -> None:
    definition = WorkflowDefinition(
        name="cyclic",
        tasks=[
            TaskDefinition(name="a", parents=["c"]),
            TaskDefinition(name="b", parents=["a"]),
            TaskDefinition(name="c", parents=["b"]),
        ],
    )
    with pytest.raises(roost.InvalidDefinitionError, match="cycle") as caught:
        dag.validate(definition)
    message = str(caught.value)
    assert all(name in message for name in ("a", "b", "c"))


def test_a_self_parent_is_a_cycle() -> None:
    definition = WorkflowDefinition(name="selfish", tasks=[TaskDefinition(name="a", parents=["a"])])
    with pytest.raises(roost.InvalidDefinitionError, match="cycle: a -> a"):
        dag.validate(definition)


def test_an_empty_workflow_is_rejected() -> None:
    with pytest.raises(roost.InvalidDefinitionError, match="has no tasks"):
        dag.validate(WorkflowDefinition(name="empty", tasks=[]))


def test_descendants_cover_the_whole_subtree_only() -> None:
    definition = WorkflowDefinition(
        name="tree",
        tasks=[
            TaskDefinition(name="root"),
            TaskDefinition(name="a", parents=["root"]),
            TaskDefinition(name="b", parents=["root"]),
            TaskDefinition(name="a1", parents=["a"]),
            TaskDefinition(name="ab", parents=["a", "b"]),
        ],
    )
    assert dag.descendants(definition, ["a"]) == {"a1", "ab"}
    assert dag.descendants(definition, ["b"]) == {"ab"}
    assert dag.roots(definition) == ["root"]


def test_the_version_changes_when_the_definition_changes_and_only_then(client: Roost) -> None:
    wf = client.workflow("versioned")

    @wf.task()
    def a(input: dict, ctx: Context) -> None: ...

    first = wf.definition().version_hash()
    assert wf.definition().version_hash() == first

    @wf.task(parents=[a])
    def b(input: dict, ctx: Context) -> None: ...

    assert wf.definition().version_hash() != first


class Bead(BaseModel):
    task_id: str
    priority: int = 1


def test_bad_input_is_rejected_by_the_sdk_naming_the_field(client: Roost) -> None:
    wf = client.workflow("validated", input_validator=Bead)
    with pytest.raises(roost.InvalidInputError, match="priority"):
        wf.validate_input({"task_id": "x", "priority": "high"})
    with pytest.raises(roost.InvalidInputError, match="task_id"):
        wf.validate_input({})
    assert wf.validate_input({"task_id": "x"}) == {"task_id": "x", "priority": 1}


def test_input_validator_must_be_a_pydantic_model(client: Roost) -> None:
    with pytest.raises(roost.InvalidDefinitionError, match="pydantic model"):
        client.workflow("bad-validator", input_validator=dict)  # type: ignore[arg-type]
