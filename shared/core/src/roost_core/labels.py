"""What a task wants of the worker that runs it (issue #21): desired labels, each
required or weighted, compared with a worker process's labels. Pure logic: the engine's
placement (roost_core.engine.placement) scores live workers with it."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from roost_core.metadata import KEY_RE

LabelValue = str | int | float
Comparator = Literal["==", "!=", "<", "<=", ">", ">="]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


VALUE_MAX = 200  # as a worker label's (roost_core.wire.WORKER_LABEL_VALUE_MAX)
LABELS_MAX = 32


def _whole(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


class DesiredLabel(BaseModel):
    """A label a task wants its worker to have: ``worker_label <comparator> value``
    (``memory_gb >= 32``). ``required``: a worker without it never runs the task (the
    task waits for one that has it); else each satisfied label adds ``weight`` to a
    worker's score, and the best-scoring live worker runs it."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        # What the model validator refuses, the document says: an order compares numbers.
        json_schema_extra={
            "if": {
                "properties": {"comparator": {"enum": ["<", "<=", ">", ">="]}},
                "required": ["comparator"],
            },
            "then": {"properties": {"value": {"type": "number"}}},
        },
    )

    value: str | int | float = Field(
        json_schema_extra={
            "anyOf": [
                {"type": "string", "maxLength": VALUE_MAX, "pattern": "^[^\\u0000]*$"},
                {"type": "number"},
            ]
        }
    )
    comparator: Comparator = "=="
    required: bool = False
    # 3.0 is 3, as JSON Schema's "integer" means it (the api validates bodies strictly).
    weight: Annotated[int, BeforeValidator(_whole)] = Field(default=1, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _check(self) -> DesiredLabel:
        if isinstance(self.value, bool):
            raise ValueError(f"desired label value {self.value!r} is not a string or a number")
        if isinstance(self.value, float) and not math.isfinite(self.value):
            raise ValueError(f"desired label value {self.value!r} is not a finite number")
        if isinstance(self.value, str) and (len(self.value) > VALUE_MAX or "\x00" in self.value):
            raise ValueError(
                f"desired label value {self.value[:40]!r} is longer than {VALUE_MAX}"
                " characters or holds a NUL character"
            )
        if self.comparator not in ("==", "!=") and isinstance(self.value, str):
            raise ValueError(
                f"desired label comparator {self.comparator!r} compares numbers, "
                f"not the string {self.value!r}"
            )
        return self

    def describe(self, key: str) -> str:
        """``memory_gb >= 32``, as a reason names it."""
        return f"{key} {self.comparator} {self.value!r}"


def satisfies(want: DesiredLabel, have: LabelValue | None) -> bool:
    """Whether a worker label value ``have`` (None: the worker lacks the label) meets
    ``want``. Numbers compare as numbers (64 == 64.0); a string never meets a number's
    order comparison, nor a number a string's; a missing label meets only ``!=``."""
    if have is None:
        return want.comparator == "!="
    numeric = not isinstance(have, str) and not isinstance(want.value, str)
    if want.comparator in ("==", "!="):
        same = have == want.value if numeric or type(have) is type(want.value) else False
        return same if want.comparator == "==" else not same
    if not numeric:
        return False
    return _COMPARE[want.comparator](have, want.value)


def score(desired: Mapping[str, DesiredLabel], labels: Mapping[str, LabelValue]) -> int | None:
    """A worker's score for a task: None if it lacks a required label; else the sum of
    the weights of the preferred labels it satisfies."""
    total = 0
    for key, want in desired.items():
        met = satisfies(want, labels.get(key))
        if want.required and not met:
            return None
        if met and not want.required:
            total += want.weight
    return total


def unmet(desired: Mapping[str, DesiredLabel], labels: Mapping[str, LabelValue]) -> list[str]:
    """The required labels a worker lacks, described (for a reason a task waits)."""
    return [
        want.describe(key)
        for key, want in desired.items()
        if want.required and not satisfies(want, labels.get(key))
    ]


def _check_keys(labels: dict[str, DesiredLabel]) -> dict[str, DesiredLabel]:
    for key in labels:
        if not KEY_RE.fullmatch(key):
            raise ValueError(
                f"desired label key {key!r} must be 1-64 letters, digits, '_', '.', '-'"
                " or '/' (not starting with '.', '-' or '/')"
            )
    if len(labels) > LABELS_MAX:
        raise ValueError(f"at most {LABELS_MAX} desired labels, not {len(labels)}")
    return labels


# A task's (or a run's) desired labels by worker label key, keys as worker labels' own.
DesiredLabels = Annotated[
    dict[str, DesiredLabel],
    AfterValidator(_check_keys),
    Field(
        json_schema_extra={
            "propertyNames": {"pattern": f"^{KEY_RE.pattern}$"},
            "maxProperties": LABELS_MAX,
        }
    ),
]
