"""Key expressions in CEL (the Common Expression Language, as Hatchet uses), for dynamic
rate-limit keys and workflow concurrency groups: ``input.user_id``, ``"repo:" +
input.repo``. An expression sees the run's input as ``input``. Expressions are compiled
once, checked when a workflow is declared and registered, and evaluated when a run is
triggered (so a bad value is refused then, naming it, rather than stranding a task)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import cel

KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/@-]{0,199}$")


def compile_cel(expression: str, what: str, variables: frozenset[str], hint: str) -> Any:
    """``expression`` compiled, for an expression that may read only ``variables``;
    ValueError naming it (as ``what``) if it is empty, does not parse, or reads another
    variable (``hint`` says which it may). Shared by key expressions and event filters."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError(f"{what} {expression!r} is empty")
    try:
        program = cel.compile(expression)
    except (ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{what} {expression!r} is not valid CEL: {first}") from None
    unknown = sorted(set(program.variables()) - variables)
    if unknown:
        raise ValueError(f"{what} {expression!r} uses {', '.join(unknown)}: {hint}")
    return program


@lru_cache(maxsize=1024)
def compile_expression(expression: str) -> Any:
    """The compiled program; ValueError naming the expression if it does not parse or
    uses a variable other than ``input``."""
    return compile_cel(
        expression,
        "key expression",
        frozenset({"input"}),
        "only `input` (the run's input) is available",
    )


def evaluate_key(expression: str, run_input: Any) -> str:
    """The key ``expression`` gives for ``run_input``: a string or a whole number, turned
    into a valid key; ValueError naming the expression and the value otherwise."""
    program = compile_expression(expression)
    try:
        value = program.execute({"input": run_input})
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise ValueError(
            f"key expression {expression!r} could not be evaluated on this input:"
            f" {type(exc).__name__} {exc}"
        ) from None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(
            f"key expression {expression!r} gave {value!r}: a key must be a string or a"
            " whole number"
        )
    key = str(value)
    if not KEY_RE.match(key):
        raise ValueError(
            f"key expression {expression!r} gave {key!r}: a key is 1-200 characters of"
            " letters, digits and _.:/@-"
        )
    return key
