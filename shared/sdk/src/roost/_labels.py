"""What a task wants of the worker process that runs it (issue #21): ``Label``, and the
checks that turn a task's or a run's desired labels into what its definition carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from roost._errors import InvalidDefinitionError
from roost_core.definitions import TaskDefinition
from roost_core.labels import DesiredLabel


@dataclass(frozen=True)
class Label:
    """A label the worker that runs a task should have: ``worker_label <comparator>
    value``. ``required``: only a worker that has it runs the task (it waits for one);
    else the live worker whose met labels weigh most (``weight`` each) runs it, ties
    going to the least loaded. A plain value in ``desired_labels`` means
    ``Label(value, required=True)``.

    ``Label("eu", required=True)``, ``Label(32, comparator=">=", weight=10)``."""

    value: str | int | float
    required: bool = False
    comparator: Literal["==", "!=", "<", "<=", ">", ">="] = "=="
    weight: int = 1


def desired_labels(owner: str, labels: Mapping[str, Label | str | int | float]) -> dict[str, Any]:
    """``labels`` as a definition carries them (JSON), or InvalidDefinitionError naming
    the bad one (``owner``: "task 'x'", "run of workflow 'y'")."""
    if not isinstance(labels, Mapping):
        raise InvalidDefinitionError(
            f"{owner}: desired_labels must map label names to Label(...) or values, not {labels!r}"
        )
    out: dict[str, Any] = {}
    for key, want in labels.items():
        label = want if isinstance(want, Label) else Label(want, required=True)
        try:
            checked = DesiredLabel(
                value=label.value,
                required=label.required,
                comparator=label.comparator,
                weight=label.weight,
            )
        except ValidationError as exc:
            problem = "; ".join(e["msg"] for e in exc.errors())
            raise InvalidDefinitionError(f"{owner}: desired label {key!r}: {problem}") from None
        out[key] = checked.model_dump()
    try:  # the key rule, as the api applies it
        TaskDefinition(name="x", desired_labels=out)
    except ValidationError as exc:
        problem = "; ".join(e["msg"] for e in exc.errors())
        raise InvalidDefinitionError(f"{owner}: {problem}") from None
    return out
