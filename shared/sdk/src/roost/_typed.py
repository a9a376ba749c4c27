"""Typed values at a task's edges: when a task function's return annotation is a pydantic
model or a dataclass, what its callers read back from the JSON the api carries (a
standalone task's result, a child's ``ctx.task_output(parent)``) is validated into it.
Other annotations, and none, leave the JSON as it is."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter


def typed(annotation: Any) -> bool:
    """Whether values of ``annotation`` are converted from and to JSON for the user: a
    pydantic model or a dataclass (other annotations pass JSON through as it is)."""
    return isinstance(annotation, type) and (
        issubclass(annotation, BaseModel) or dataclasses.is_dataclass(annotation)
    )


def hints(fn: Callable[..., Any]) -> tuple[Any, Any]:
    """The annotations of ``fn``'s first parameter (its input) and of its return, or
    None where there is none or it cannot be resolved (a class defined in a function
    body, under ``from __future__ import annotations``)."""
    try:
        found = typing.get_type_hints(fn)
    except Exception:  # an unresolvable name: behave as if unannotated
        return None, None
    params = list(inspect.signature(fn).parameters)
    return (found.get(params[0]) if params else None), found.get("return")


@functools.cache
def output_adapter(fn: Callable[..., Any]) -> TypeAdapter[Any] | None:
    """What validates ``fn``'s output into its return annotation, or None when that is
    not a model or a dataclass. Made once per function: a child reads its parents'
    outputs on every attempt, and resolving annotations is not free."""
    output = hints(fn)[1]
    return TypeAdapter(output) if typed(output) else None


def jsonable(value: Any, what: str) -> Any:
    """``value`` as the JSON the api will carry: a pydantic model or a dataclass dumped
    (through pydantic rather than ``dataclasses.asdict``, so nested models, datetimes and
    enums come out as JSON, as they do from a model), anything else as it is. What is not
    JSON raises TypeError naming ``what`` ("task 'x'"): found here, on the worker, rather
    than as a report the engine cannot read."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return TypeAdapter(type(value)).dump_python(value, mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} returned a value that is not JSON: {exc}") from None
    return value
