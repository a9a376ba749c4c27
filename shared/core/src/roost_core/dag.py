"""Pure DAG logic over a :class:`~roost_core.wire.WorkflowDefinition`: validation,
roots and descendants. Used by the SDK (at definition time), the api (at registration)
and the scheduler (on failure)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from roost_core.errors import InvalidDefinitionError
from roost_core.wire import NAME_PATTERN, WorkflowDefinition

# Names become part of RabbitMQ queue names and URLs, so keep them to a safe alphabet.
NAME_RE = re.compile(NAME_PATTERN)


def check_name(kind: str, name: str) -> None:
    """Raise InvalidDefinitionError unless ``name`` is a usable workflow or task name."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidDefinitionError(
            f"{kind} name {name!r} is invalid: use 1-128 letters, digits, '_', '-', '.' or ':', "
            "starting with a letter, digit or '_'"
        )


def validate(definition: WorkflowDefinition) -> None:
    """Raise InvalidDefinitionError naming the problem if ``definition`` is not a DAG
    of uniquely named tasks whose parents all exist."""
    check_name("workflow", definition.name)
    if not definition.tasks:
        raise InvalidDefinitionError(f"workflow {definition.name!r} has no tasks")
    seen: set[str] = set()
    for task in definition.tasks:
        check_name("task", task.name)
        if task.name in seen:
            raise InvalidDefinitionError(
                f"workflow {definition.name!r} has two tasks named {task.name!r}"
            )
        seen.add(task.name)
    for task in definition.tasks:
        for parent in task.parents:
            if parent not in seen:
                raise InvalidDefinitionError(
                    f"task {task.name!r} of workflow {definition.name!r} names an unknown "
                    f"parent {parent!r}"
                )
        if len(set(task.parents)) != len(task.parents):
            raise InvalidDefinitionError(f"task {task.name!r} lists a parent twice")
    handler = definition.on_failure
    if handler is not None:
        check_name("task", handler.name)
        if handler.name in seen:
            raise InvalidDefinitionError(
                f"the on_failure handler of workflow {definition.name!r} is named "
                f"{handler.name!r}, like one of its tasks"
            )
        if handler.parents:
            raise InvalidDefinitionError(
                f"the on_failure handler {handler.name!r} cannot have parents: it runs "
                "after the whole run has failed"
            )
    cycle = find_cycle(definition)
    if cycle:
        raise InvalidDefinitionError(
            f"workflow {definition.name!r} has a cycle: {' -> '.join(cycle)}"
        )


def find_cycle(definition: WorkflowDefinition) -> list[str] | None:
    """Return one cycle as a list of task names (first name repeated last), or None."""
    parents = {t.name: t.parents for t in definition.tasks}
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(parents, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for parent in parents.get(node, []):
            if colour.get(parent) == grey:
                start = stack.index(parent)
                # stack runs child -> parent; print it in dependency order.
                return list(reversed([*stack[start:], parent]))
            if colour.get(parent) == white:
                found = visit(parent)
                if found:
                    return found
        stack.pop()
        colour[node] = black
        return None

    for name in parents:
        if colour[name] == white:
            found = visit(name)
            if found:
                return found
    return None


def roots(definition: WorkflowDefinition) -> list[str]:
    """Tasks with no parents: the ones a new run starts with."""
    return [t.name for t in definition.tasks if not t.parents]


def descendants(definition: WorkflowDefinition, names: Iterable[str]) -> set[str]:
    """Every task that depends, directly or not, on any of ``names`` (excluding them)."""
    children: dict[str, list[str]] = {t.name: [] for t in definition.tasks}
    for task in definition.tasks:
        for parent in task.parents:
            children[parent].append(task.name)
    found: set[str] = set()
    todo = [c for n in names for c in children.get(n, [])]
    while todo:
        node = todo.pop()
        if node not in found:
            found.add(node)
            todo.extend(children[node])
    return found
