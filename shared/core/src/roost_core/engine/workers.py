"""Worker processes as their heartbeats describe them."""

from __future__ import annotations

import json

from roost_core.engine.state import Conn
from roost_core.queries import SQL
from roost_core.wire import WorkerHeartbeat

_RECORD = SQL.record_heartbeats


def record_heartbeats(conn: Conn, beats: list[WorkerHeartbeat]) -> None:
    """Remember each worker process's latest heartbeat (one statement per batch): its
    state, slots, attempts running, versions and labels. A heartbeat older (by the
    worker's own clock) than the one already stored changes nothing: with several
    scheduler replicas a late "draining" must not overwrite the "stopped" the worker
    sent after it."""
    if not beats:
        return
    latest = list({b.worker_id: b for b in sorted(beats, key=lambda b: b.sent_at)}.values())
    conn.execute(
        _RECORD,
        {
            "ids": [b.worker_id for b in latest],
            "names": [b.name for b in latest],
            "workflows": [",".join(b.workflows) for b in latest],
            "slots": [b.slots for b in latest],
            "running": [len(b.running) for b in latest],
            "held": [",".join(b.held) for b in latest],
            "states": [b.state for b in latest],
            "versions": [b.version for b in latest],
            "sdk_versions": [b.sdk_version for b in latest],
            "sent_at": [b.sent_at for b in latest],
            # JSON text: WorkerHeartbeat has kept only what jsonb can hold.
            "labels": [json.dumps(b.labels, allow_nan=False) for b in latest],
        },
    )
