"""What operators look at: recent activity (runs per minute, durations, queue depth) and
the worker processes."""

from __future__ import annotations

import time
from typing import Any

from psycopg.rows import dict_row

from roost_api.statements import SQL
from roost_api.store.common import Conn, iso
from roost_core.statuses import RunStatus, WorkerStatus

_FINISHED_PER_MINUTE = SQL.runs_finished_per_minute
_DURATIONS_PER_MINUTE = SQL.task_durations_per_minute
_CURRENT_MINUTE = SQL.current_minute
_WORKERS = SQL.workers_list


async def activity(conn: Conn, tenant_id: str, minutes: int) -> dict[str, Any]:
    """The tenant's last ``minutes``, a point per minute: runs that ended, by final
    state, and the p50/p95 duration of the tasks of those runs. Both read only runs that
    ended in the window, through the ``runs_finished`` index."""
    params = {"tenant_id": tenant_id, "minutes": minutes}
    cur = await conn.execute(_FINISHED_PER_MINUTE, params)
    finished: dict[int, dict[str, int]] = {}
    for minute, status, count in await cur.fetchall():
        finished.setdefault(int(minute), {})[status] = int(count)
    cur = await conn.execute(_DURATIONS_PER_MINUTE, params)
    durations = {int(m): (float(p50), float(p95)) for m, p50, p95 in await cur.fetchall()}
    cur = await conn.execute(_CURRENT_MINUTE)
    row = await cur.fetchone()
    now = int(row[0]) if row else int(time.time()) // 60 * 60
    points = []
    for minute in range(now - 60 * (minutes - 1), now + 60, 60):
        counts = finished.get(minute, {})
        p50, p95 = durations.get(minute, (None, None))
        points.append(
            {
                "minute": minute,
                "succeeded": counts.get(RunStatus.SUCCEEDED, 0),
                "failed": counts.get(RunStatus.FAILED, 0),
                "cancelled": counts.get(RunStatus.CANCELLED, 0),
                "task_p50": p50,
                "task_p95": p95,
            }
        )
    return {"minutes": minutes, "points": points}


async def list_workers(
    conn: Conn, heartbeat_timeout: float, worker_id: str | None = None
) -> list[dict[str, Any]]:
    """Worker processes (or the one with ``worker_id``) by their latest heartbeat: alive,
    draining, stopped, or dead when silent longer than ``heartbeat_timeout`` seconds
    without having said it stopped (``WorkerStatus.of``). Those still heard from come
    first, then the newest."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_WORKERS, {"timeout": heartbeat_timeout, "worker_id": worker_id})
        rows = await cur.fetchall()
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "status": WorkerStatus.of(r["state"], r["heard_recently"]).value,
            "version": r["version"],
            "sdk_version": r["sdk_version"],
            "labels": r["labels"],
            "workflows": r["workflows"],
            "slots": r["slots"],
            "running": r["running"],
            "started_at": iso(r["started_at"]),
            "last_heartbeat_at": iso(r["last_heartbeat_at"]),
        }
        for r in rows
    ]
