"""A workflow's own options (``roost.workflow(...)``), checked where it is defined, with
errors naming the workflow and the bad option: nothing wrong waits for the first
register to be found."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from roost._errors import InvalidDefinitionError, InvalidInputError
from roost._ratelimits import Concurrency
from roost_core import crons, triggers


def check_options(
    name: str,
    input_validator: type[BaseModel] | None,
    on_events: Sequence[str] | None,
    concurrency: Concurrency | None,
) -> None:
    """Raise InvalidDefinitionError naming the first option that cannot be used."""
    if concurrency is not None and not isinstance(concurrency, Concurrency):
        raise InvalidDefinitionError(
            f"concurrency of workflow {name!r} takes a Concurrency(...), not {concurrency!r}"
        )
    if isinstance(on_events, str):
        raise InvalidDefinitionError(
            f"on_events of workflow {name!r} must be a list of patterns, "
            f"not the string {on_events!r}: write on_events=[{on_events!r}]"
        )
    for pattern in on_events or ():
        try:
            triggers.check_pattern(pattern)
        except ValueError as exc:
            raise InvalidDefinitionError(f"workflow {name!r}: {exc}") from None
    if input_validator is not None and not (
        isinstance(input_validator, type) and issubclass(input_validator, BaseModel)
    ):
        raise InvalidDefinitionError(
            f"input_validator of workflow {name!r} must be a pydantic model class, "
            f"not {input_validator!r}"
        )


def declared_crons(workflow: str, on_crons: Sequence[str] | None) -> list[str]:
    """``on_crons`` of a workflow definition, each expression checked now (as the api
    will check it) so that a bad one fails where the workflow is defined, naming it."""
    if isinstance(on_crons, str):
        raise InvalidDefinitionError(
            f"on_crons of workflow {workflow!r} must be a list of cron expressions, "
            f"not the string {on_crons!r}: write on_crons=[{on_crons!r}]"
        )
    checked: dict[str, str] = {}
    for expression in on_crons or ():
        if not isinstance(expression, str):
            raise InvalidDefinitionError(
                f"workflow {workflow!r}: on_crons takes cron expressions (strings), "
                f"not {expression!r}"
            )
        try:
            normal = crons.check_expression(expression)
        except crons.CronExpressionError as exc:
            raise InvalidDefinitionError(f"workflow {workflow!r}: on_crons: {exc}") from None
        if normal in checked:
            # Two spellings of one schedule (an alias and its five fields) would be one
            # declared cron: the api refuses the pair, so refuse it here.
            raise InvalidDefinitionError(
                f"workflow {workflow!r}: on_crons lists {checked[normal]!r} and "
                f"{expression!r}, the same schedule twice"
            )
        checked[normal] = expression
    return list(checked)


def declared_cron_input(workflow: str, cron_input: Any, validate: Callable[[Any], Any]) -> Any:
    """``cron_input`` checked against the workflow's input model now: the api stores it
    as given, and a bad one would fail every run the crons start."""
    if cron_input is None:
        return None
    try:
        return validate(cron_input)
    except InvalidInputError as exc:
        raise InvalidDefinitionError(f"cron_input of workflow {workflow!r}: {exc}") from None


def validation_problems(exc: ValidationError) -> str:
    """A pydantic validation error as one line naming each bad field."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
    )
