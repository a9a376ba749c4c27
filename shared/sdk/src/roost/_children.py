"""Child runs (issue #18): a run triggered inside a task (``wf.run``, ``aio_run``,
``run_many`` called while a task runs, on a worker) is linked to that task, and its
``key`` (default: its number among the runs the attempt triggered) makes the trigger
idempotent: a retried or replayed task gets the run it triggered before, never a
second one. The api does the rest (roost_api.store.children): the link, the key, and
the parent run's metadata for a child that gives none of its own."""

from __future__ import annotations

import re
from collections.abc import Sequence

from roost import _task_logs as task_logs
from roost._errors import InvalidInputError
from roost_core.api_models import CHILD_KEY_PATTERN, ParentRef

_KEY = re.compile(CHILD_KEY_PATTERN)


def parent_ref(key: str | None, what: str) -> ParentRef | None:
    """The parent of a run triggered now: the running task (with ``key``, or the next
    default one), or None outside a task. InvalidInputError for a ``key`` outside a task
    or one that is not a key."""
    ctx = task_logs.CURRENT.get()
    if ctx is None:
        if key is not None:
            raise InvalidInputError(
                f"{what}: key={key!r} names a child run within the task that triggers it; "
                "give it only inside a task"
            )
        return None
    return ParentRef(
        task_run_id=ctx.task_run_id, key=checked_key(ctx._spawn_key() if key is None else key)
    )


def parent_refs(keys: Sequence[str] | None, count: int, what: str) -> list[ParentRef | None]:
    """The parents of ``count`` runs triggered at once (``run_many``), in order."""
    if keys is not None and len(keys) != count:
        raise InvalidInputError(f"{what} got {count} inputs but {len(keys)} keys")
    return [parent_ref(None if keys is None else keys[i], what) for i in range(count)]


def checked_key(key: object) -> str:
    """``key`` if it can name a child run; InvalidInputError naming it if not."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidInputError(
            f"a child run's key is 1-200 letters, digits and _.:/@-, not {key!r}"
        )
    return key
