"""Event keys, the patterns workflows subscribe with, and how they match."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

import roost
from roost import Context, Roost
from roost_core.triggers import check_event_key, check_pattern, event_key_matches, matches_any
from roost_core.wire import TaskDefinition, WorkflowDefinition


@pytest.mark.parametrize(
    ("pattern", "key"),
    [
        ("task:ready", "task:ready"),
        ("task:*", "task:ready"),
        ("task:*", "task:"),  # '*' matches no characters too
        ("*", "anything/at.all"),
        ("*:ready", "task:ready"),
        ("task*ready", "task:is:ready"),
        ("a*b*c", "aXXbYYc"),
        ("a*b*c", "abc"),
        ("*ready*", "ready"),
        ("**", "x"),
        ("orders/*.created", "orders/eu.created"),
        ("a*a*a*b", "aaaaaab"),
    ],
)
def test_a_pattern_matches(pattern: str, key: str) -> None:
    assert event_key_matches(pattern, key)


@pytest.mark.parametrize(
    ("pattern", "key"),
    [
        ("task:ready", "task:ready2"),
        ("task:ready", "task:read"),
        ("task:ready", "Task:ready"),  # case matters
        ("task:*", "tasks:ready"),
        ("task:*", "other:ready"),
        ("*:ready", "task:readyx"),
        ("a*b*c", "aXXbYY"),
        ("a*b*c", "acb"),
        ("other:*", "task:ready"),
        ("task.ready", "taskXready"),  # '.' is not special
        ("a*a*a*b", "aaaaaa"),
    ],
)
def test_a_pattern_does_not_match(pattern: str, key: str) -> None:
    assert not event_key_matches(pattern, key)


def test_matching_stays_fast_for_patterns_full_of_wildcards() -> None:
    pattern = "a*" * 99 + "b"
    key = "a" * 200
    began = time.perf_counter()
    assert not event_key_matches(pattern, key)
    assert time.perf_counter() - began < 2.0


def test_matches_any_is_true_when_one_pattern_matches() -> None:
    assert matches_any(["other:*", "task:*"], "task:ready")
    assert not matches_any(["other:*"], "task:ready")
    assert not matches_any([], "task:ready")


@pytest.mark.parametrize("key", ["task:ready", "a", "orders/eu.created-1_x", "k" * 200])
def test_valid_event_keys(key: str) -> None:
    assert check_event_key(key) == key


@pytest.mark.parametrize("key", ["", "task ready", "task:*", "k" * 201, "é", None, 5])
def test_invalid_event_keys_are_rejected_naming_the_key(key: object) -> None:
    with pytest.raises(ValueError, match="event key") as caught:
        check_event_key(key)
    assert repr(key)[:40] in str(caught.value)


@pytest.mark.parametrize("pattern", ["task:*", "*", "a-b_c.d:e/f*", "p" * 200])
def test_valid_patterns(pattern: str) -> None:
    assert check_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["", "task ready", "task:?", "p" * 201, "a|b", None])
def test_invalid_patterns_are_rejected_naming_the_pattern(pattern: object) -> None:
    with pytest.raises(ValueError, match="event pattern") as caught:
        check_pattern(pattern)
    assert repr(pattern)[:40] in str(caught.value)


def _definition(**extra: object) -> WorkflowDefinition:
    return WorkflowDefinition(name="wf", tasks=[TaskDefinition(name="a")], **extra)  # type: ignore[arg-type]


def test_a_definition_carries_its_patterns() -> None:
    assert _definition().on_events == []
    assert _definition(on_events=["task:*", "other:x"]).on_events == ["task:*", "other:x"]


def test_a_definition_with_a_bad_pattern_is_rejected_naming_it() -> None:
    with pytest.raises(ValidationError, match="'bad pattern'"):
        _definition(on_events=["ok:*", "bad pattern"])


def test_patterns_change_the_version_and_no_patterns_keep_it() -> None:
    plain = _definition()
    assert _definition(on_events=[]).version_hash() == plain.version_hash()
    assert _definition(on_events=["task:*"]).version_hash() != plain.version_hash()
    # A definition stored before event triggers existed reads back with the same version.
    stored = plain.model_dump(mode="json")
    del stored["on_events"]
    assert WorkflowDefinition.model_validate(stored).version_hash() == plain.version_hash()


# -- the SDK ------------------------------------------------------------------------------


@pytest.fixture
def client() -> Roost:
    return Roost(api_url="http://127.0.0.1:1", token="unused")


def test_the_sdk_registers_a_workflows_patterns(client: Roost) -> None:
    wf = client.workflow("subscribed", on_events=["task:ready", "task:*"])

    @wf.task()
    def a(input: dict, ctx: Context) -> None: ...

    assert wf.definition().on_events == ["task:ready", "task:*"]
    assert client.workflow("plain").on_events == []


def test_a_bad_pattern_is_rejected_at_declaration_naming_it(client: Roost) -> None:
    with pytest.raises(roost.InvalidDefinitionError, match="'task ready'") as caught:
        client.workflow("subscribed", on_events=["task:*", "task ready"])
    assert "'subscribed'" in str(caught.value)


def test_a_single_string_instead_of_a_list_is_rejected(client: Roost) -> None:
    with pytest.raises(roost.InvalidDefinitionError, match=r"on_events=\['task:\*'\]"):
        client.workflow("subscribed", on_events="task:*")


def test_push_many_rejects_a_malformed_event_before_sending_anything(client: Roost) -> None:
    with pytest.raises(roost.BadRequestError, match=r"events\[1\]"):
        client.events.push_many([{"key": "a"}, {"data": {}}])
    with pytest.raises(roost.BadRequestError, match="colour"):
        client.events.push_many([{"key": "a", "colour": "red"}])
    assert client.events.push_many([]) == []
