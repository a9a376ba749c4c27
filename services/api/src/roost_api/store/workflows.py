"""Workflows and their versions: registering a definition, finding a version (cached: a
version never changes), the workflows event triggers start, and per-workflow stats."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from roost_api.statements import SQL
from roost_api.store.common import Conn, iso
from roost_core.errors import (
    UnknownWorkflowError,
)
from roost_core.wire import WorkflowDefinition

_UPSERT_WORKFLOW = SQL.upsert_workflow
_REGISTER_VERSION = SQL.register_version
_VERSION = SQL.workflow_version
_NEWEST_VERSION = SQL.newest_workflow_version
_EVENT_TRIGGERED = SQL.event_triggered_workflows
_WITH_CURRENT_VERSION = SQL.workflows_with_current_version
_WORKFLOW_ID = SQL.workflow_id
_RUN_STATS = SQL.workflow_run_stats


@dataclass(frozen=True)
class WorkflowVersion:
    workflow_id: str
    version_id: str
    version: str
    definition: WorkflowDefinition


async def register_workflow(
    conn: Conn, tenant_id: str, definition: WorkflowDefinition
) -> tuple[WorkflowVersion, bool]:
    """Upsert the workflow and its version; return it and whether the version is new."""
    version = definition.version_hash()
    cur = await conn.execute(
        _UPSERT_WORKFLOW, {"id": uuid.uuid4(), "tenant_id": tenant_id, "name": definition.name}
    )
    row = await cur.fetchone()
    assert row is not None
    workflow_id = row[0]
    cur = await conn.execute(
        _REGISTER_VERSION,
        {
            "id": uuid.uuid4(),
            "workflow_id": workflow_id,
            "version": version,
            "definition": Jsonb(definition.model_dump(mode="json")),
        },
    )
    row = await cur.fetchone()
    assert row is not None
    return WorkflowVersion(str(workflow_id), str(row[0]), version, definition), bool(row[1])


async def find_version(
    conn: Conn, tenant_id: str, name: str, version: str | None
) -> WorkflowVersion:
    """The given version of a workflow, or its newest; raise if it is unknown."""
    cur = await conn.execute(
        _VERSION if version else _NEWEST_VERSION,
        {"tenant_id": tenant_id, "name": name, "version": version},
    )
    row = await cur.fetchone()
    if row is None:
        if version:
            raise UnknownWorkflowError(f"workflow {name!r} has no version {version!r}")
        raise UnknownWorkflowError(
            f"workflow {name!r} is not registered: start a worker that serves it, "
            "or register it with POST /api/v1/workflows"
        )
    return WorkflowVersion(
        str(row[0]), str(row[1]), row[2], WorkflowDefinition.model_validate(row[3])
    )


class VersionCache:
    """Workflow versions by (tenant, name, version hash). A version never changes, so an
    exact lookup is cached for good; "the newest version" is cached only until this
    process registers a new one (other api replicas see a new version within
    ``LATEST_TTL`` seconds)."""

    LATEST_TTL = 2.0

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str, str], WorkflowVersion] = {}
        self._latest: dict[tuple[str, str], tuple[WorkflowVersion, float]] = {}
        self._triggered: dict[str, tuple[list[WorkflowVersion], float]] = {}

    def cached(self, tenant_id: str, name: str, version: str | None) -> WorkflowVersion | None:
        """The version, if this process has it at hand (no database read): a trigger
        that finds it here takes no pool connection at all."""
        if version:
            return self._exact.get((tenant_id, name, version))
        hit = self._latest.get((tenant_id, name))
        return hit[0] if hit and hit[1] > time.monotonic() else None

    async def get(
        self, conn: Conn, tenant_id: str, name: str, version: str | None
    ) -> WorkflowVersion:
        now = time.monotonic()
        found = self.cached(tenant_id, name, version)
        if found is None:
            found = await find_version(conn, tenant_id, name, version)
            self._exact[(tenant_id, name, found.version)] = found
            if not version:
                self._latest[(tenant_id, name)] = (found, now + self.LATEST_TTL)
        return found

    async def triggered(self, conn: Conn, tenant_id: str) -> list[WorkflowVersion]:
        """The newest version of each of the tenant's workflows that has ``on_events``
        patterns, cached like "the newest version" above."""
        now = time.monotonic()
        hit = self._triggered.get(tenant_id)
        if hit is None or hit[1] <= now:
            hit = (await triggered_versions(conn, tenant_id), now + self.LATEST_TTL)
            self._triggered[tenant_id] = hit
        return hit[0]

    def forget_latest(self, tenant_id: str, name: str) -> None:
        self._latest.pop((tenant_id, name), None)
        self._triggered.pop(tenant_id, None)


async def triggered_versions(conn: Conn, tenant_id: str) -> list[WorkflowVersion]:
    """The newest version of every workflow of the tenant whose definition subscribes
    to events (non-empty ``on_events``), by workflow name. An older version's patterns
    do not count: only what the workflow's newest version says."""
    cur = await conn.execute(_EVENT_TRIGGERED, {"tenant_id": tenant_id})
    return [
        WorkflowVersion(str(r[0]), str(r[1]), r[2], WorkflowDefinition.model_validate(r[3]))
        for r in await cur.fetchall()
    ]


async def list_workflows(conn: Conn, tenant_id: str) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_WITH_CURRENT_VERSION, {"tenant_id": tenant_id})
        rows = await cur.fetchall()
    return sorted(
        (
            {
                "name": r["name"],
                "version": r["version"],
                "versions": r["versions"],
                "tasks": r["definition"]["tasks"],
                "input_schema": r["definition"].get("input_schema"),
                "updated_at": iso(r["registered_at"]),
            }
            for r in rows
        ),
        key=lambda w: w["name"],
    )


async def workflow_stats(conn: Conn, tenant_id: str, name: str, hours: float) -> dict[str, Any]:
    """A workflow's runs created in the last ``hours``: counts by outcome, the success
    rate of those that ended, and the p50/p95 of their durations (created to finished).
    Reads the workflow's runs through its (workflow_id, created_at) index."""
    cur = await conn.execute(_WORKFLOW_ID, {"tenant_id": tenant_id, "name": name})
    found = await cur.fetchone()
    if found is None:
        raise UnknownWorkflowError(f"workflow {name!r} not found: no worker registered it")
    cur = await conn.execute(_RUN_STATS, {"workflow_id": found[0], "seconds": hours * 3600.0})
    row = await cur.fetchone()
    total, succeeded, failed, cancelled, p50, p95 = row if row else (0, 0, 0, 0, None, None)
    ended = succeeded + failed + cancelled
    return {
        "workflow": name,
        "hours": hours,
        "runs": total,
        "succeeded": succeeded,
        "failed": failed,
        "cancelled": cancelled,
        "success_rate": succeeded / ended if ended else None,
        "duration_p50": float(p50) if p50 is not None else None,
        "duration_p95": float(p95) if p95 is not None else None,
    }
