"""Worker processes as their heartbeats describe them."""

from __future__ import annotations

import json

from roost_core.engine.placement import Candidate
from roost_core.engine.plan import Plan, Statement
from roost_core.engine.state import Conn
from roost_core.queries import SQL
from roost_core.wire import WorkerHeartbeat

_RECORD = SQL.record_heartbeats
_LIVE = SQL.live_workers

# The scheduler's default heartbeat timeout (ROOST_WORKER_HEARTBEAT_TIMEOUT_SECONDS).
DEFAULT_LIVE_SECONDS = 15.0


def record_heartbeats(
    conn: Conn, beats: list[WorkerHeartbeat], live_seconds: float = DEFAULT_LIVE_SECONDS
) -> None:
    """Remember each worker process's latest heartbeat (one statement per batch): its
    state, slots, attempts running, versions and labels, and that it counts as live for
    ``live_seconds`` (the scheduler's heartbeat timeout) from now. A heartbeat older (by
    the worker's own clock) than the one already stored changes nothing: with several
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
            "live_seconds": live_seconds,
        },
    )


def live_candidates(workflows: list[str]) -> Plan[dict[str, list[Candidate]]]:
    """The worker processes that take work now (alive, and heard from within the
    heartbeat timeout), by each of ``workflows`` they serve, with their load: attempts
    running by their last heartbeat plus those placed on them and not yet started."""
    found: dict[str, list[Candidate]] = {w: [] for w in workflows}
    rows = yield Statement(_LIVE, {"workflows": workflows})
    for worker_id, served, slots, labels, load in rows:
        candidate = Candidate(worker_id, slots, load, labels or {})
        for workflow in served:
            if workflow in found:
                found[workflow].append(candidate)
    return found
