"""What operators look at: recent activity (runs per minute, durations, queue depth) and
the worker processes."""

from __future__ import annotations

import time
from typing import Any

from psycopg.rows import dict_row

from roost_api.store.common import Conn, iso
from roost_core.statuses import RunStatus, WorkerStatus


async def activity(conn: Conn, tenant_id: str, minutes: int) -> dict[str, Any]:
    """The tenant's last ``minutes``, a point per minute: runs that ended, by final
    state, and the p50/p95 duration of the tasks of those runs. Both read only runs that
    ended in the window, through the ``runs_finished`` index."""
    cur = await conn.execute(
        "SELECT extract(epoch FROM date_trunc('minute', finished_at))::bigint, status, count(*)"
        " FROM runs WHERE tenant_id = %s AND finished_at >= now() - make_interval(mins => %s)"
        " GROUP BY 1, 2 ORDER BY 1",
        (tenant_id, minutes),
    )
    finished: dict[int, dict[str, int]] = {}
    for minute, status, count in await cur.fetchall():
        finished.setdefault(int(minute), {})[status] = int(count)
    cur = await conn.execute(
        "SELECT extract(epoch FROM date_trunc('minute', t.finished_at))::bigint,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY"
        "   extract(epoch FROM t.finished_at - t.started_at)),"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY"
        "   extract(epoch FROM t.finished_at - t.started_at))"
        " FROM runs r JOIN task_runs t ON t.run_id = r.id"
        " WHERE r.tenant_id = %s AND r.finished_at >= now() - make_interval(mins => %s)"
        "   AND t.started_at IS NOT NULL AND t.finished_at IS NOT NULL"
        " GROUP BY 1 ORDER BY 1",
        (tenant_id, minutes),
    )
    durations = {int(m): (float(p50), float(p95)) for m, p50, p95 in await cur.fetchall()}
    cur = await conn.execute("SELECT extract(epoch FROM date_trunc('minute', now()))::bigint")
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


async def list_workers(conn: Conn, heartbeat_timeout: float) -> list[dict[str, Any]]:
    """Worker processes by their latest heartbeat: alive, draining, stopped, or dead
    when silent longer than ``heartbeat_timeout`` seconds without having said it stopped
    (``WorkerStatus.of``). Those still heard from come first, then the newest."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, name, workflows, slots, running, started_at, last_heartbeat_at, state,"
            " version, sdk_version,"
            " last_heartbeat_at >= now() - make_interval(secs => %s) AS heard_recently"
            " FROM workers"
            " ORDER BY (state <> 'stopped' AND last_heartbeat_at >= now()"
            "   - make_interval(secs => %s)) DESC, last_heartbeat_at DESC LIMIT 1000",
            (heartbeat_timeout, heartbeat_timeout),
        )
        rows = await cur.fetchall()
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "status": WorkerStatus.of(r["state"], r["heard_recently"]).value,
            "version": r["version"],
            "sdk_version": r["sdk_version"],
            "workflows": r["workflows"],
            "slots": r["slots"],
            "running": r["running"],
            "started_at": iso(r["started_at"]),
            "last_heartbeat_at": iso(r["last_heartbeat_at"]),
        }
        for r in rows
    ]
