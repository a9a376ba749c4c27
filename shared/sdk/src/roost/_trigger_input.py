"""What a trigger sends, checked before anything is sent: run metadata, and the items
of a bulk trigger (the api checks both again)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from roost._errors import InvalidInputError
from roost_core import metadata as run_metadata
from roost_core.api_models import MAX_BULK, BulkItem, ParentRef


def bulk_items(
    validate: Callable[[Any], Any],
    inputs: Sequence[Any],
    idempotency_keys: Sequence[str | None] | None,
    chunk_size: int,
    metadata: dict[str, str] | None,
    parents: Sequence[ParentRef | None] | None = None,
    priority: int | None = None,
    desired_labels: dict[str, Any] | None = None,
) -> list[BulkItem]:
    """One item per input, each validated by ``validate`` (an error names its index),
    with its parent task if it is a child run (roost._children), and the runs'
    ``priority`` and ``desired_labels`` (JSON, checked by roost._labels), if given."""
    if idempotency_keys is not None and len(idempotency_keys) != len(inputs):
        raise InvalidInputError(
            f"run_many got {len(inputs)} inputs but {len(idempotency_keys)} idempotency keys"
        )
    if not 1 <= chunk_size <= MAX_BULK:
        raise InvalidInputError(f"chunk_size must be between 1 and {MAX_BULK}, not {chunk_size}")
    meta = checked_metadata(metadata)
    checked_priority(priority)
    items: list[BulkItem] = []
    for index, raw in enumerate(inputs):
        try:
            payload = validate({} if raw is None else raw)
        except InvalidInputError as exc:
            raise InvalidInputError(f"inputs[{index}]: {exc}") from None
        key = idempotency_keys[index] if idempotency_keys is not None else None
        fields = {"input": payload, "idempotency_key": key, "metadata": meta}
        parent = parents[index] if parents is not None else None
        if parent is not None:
            fields["parent"] = parent
        if priority is not None:
            fields["priority"] = priority
        if desired_labels:
            fields["desired_labels"] = desired_labels
        items.append(BulkItem.model_construct(**fields))
    return items


def checked_priority(priority: int | None) -> int | None:
    """A run's priority, checked before anything is sent: 1 (low) to 3 (high), or None
    (the workflow's default_priority, else 1)."""
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 3
    ):
        raise InvalidInputError(f"priority must be 1 (low), 2 or 3 (high), not {priority!r}")
    return priority


def checked_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """Run metadata, checked before anything is sent (the api checks it too)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InvalidInputError(f"metadata must map strings to strings, not {metadata!r}")
    try:
        return run_metadata.check(metadata)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
