"""Child runs (issue #18) as the api sees them: a trigger naming the task it is made
inside (``parent``) is linked to it, made idempotent by its key, and takes the parent
run's metadata unless it has its own; a run shows its parent and its children."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from roost_api.statements import SQL
from roost_api.store.common import Conn
from roost_core import metadata as run_metadata
from roost_core.api_models import ParentRef
from roost_core.engine.trigger import ParentLink
from roost_core.errors import BadRequestError, NotFoundError

_PARENTS = SQL.parent_task_runs
_FAMILY = SQL.run_family

# How many children a run shows (GET /api/v1/runs?parent_run_id= lists them all).
MAX_CHILDREN = 100

# How a child's idempotency key is made from its parent task and key, when the trigger
# gives none: unique per task run, so a retried or replayed task gets the same run.
CHILD_KEY_PREFIX = "roost-child:"


async def resolve_parents(
    conn: Conn, tenant_id: str, refs: Sequence[ParentRef | None]
) -> list[tuple[ParentLink, dict[str, str]] | None]:
    """Each trigger's parent task as a link, with the parent run's metadata (None for a
    trigger without one). BadRequestError for a task run id that is not a UUID,
    NotFoundError for one the tenant does not have."""
    ids: set[str] = set()
    for ref in refs:
        if ref is None:
            continue
        try:
            uuid.UUID(ref.task_run_id)
        except ValueError:
            raise BadRequestError(
                f"parent.task_run_id {ref.task_run_id!r} is not a task run id"
            ) from None
        ids.add(ref.task_run_id)
    if not ids:
        return [None] * len(refs)
    cur = await conn.execute(_PARENTS, {"ids": sorted(ids), "tenant_id": tenant_id})
    found = {row[0]: row for row in await cur.fetchall()}
    out: list[tuple[ParentLink, dict[str, str]] | None] = []
    for ref in refs:
        if ref is None:
            out.append(None)
            continue
        row = found.get(str(uuid.UUID(ref.task_run_id)))
        if row is None:
            raise NotFoundError(f"parent task run {ref.task_run_id!r} not found")
        _, run_id, task, metadata = row
        inherited = run_metadata.inherited(metadata or {})
        out.append((ParentLink(run_id, row[0], task, ref.key), inherited))
    return out


def child_idempotency_key(given: str | None, link: ParentLink | None) -> str | None:
    """A child's idempotency key: the one given, else one made of its parent task run and
    key (so that asking again gets the same run)."""
    if given is not None or link is None:
        return given
    return f"{CHILD_KEY_PREFIX}{link.task_run_id}:{link.key}"


#: A run's ``parent`` (or None), its first ``MAX_CHILDREN`` children in the order they
#: were triggered, and how many it has in each status, in one row (``run_id``):
#: :func:`family_of` turns it into what GET /api/v1/runs/{id} shows.
FAMILY = _FAMILY


def family_of(row: Sequence[Any] | None) -> dict[str, Any]:
    """``parent``, ``children`` and ``children_by_status`` from :data:`FAMILY`'s row."""
    parent, children, by_status = row if row else (None, [], {})
    return {"parent": parent, "children": children, "children_by_status": by_status}
