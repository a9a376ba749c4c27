"""Worker processes as their heartbeats describe them."""

from __future__ import annotations

from roost_core.engine.state import Conn
from roost_core.wire import WorkerHeartbeat


def record_heartbeats(conn: Conn, beats: list[WorkerHeartbeat]) -> None:
    """Remember each worker process's latest heartbeat (one statement per batch): its
    state, slots, attempts running and versions. A heartbeat older (by the worker's own
    clock) than the one already stored changes nothing: with several scheduler replicas
    a late "draining" must not overwrite the "stopped" the worker sent after it."""
    if not beats:
        return
    latest = list({b.worker_id: b for b in sorted(beats, key=lambda b: b.sent_at)}.values())
    conn.execute(
        "INSERT INTO workers (id, name, workflows, slots, running, held, last_heartbeat_at,"
        "   state, version, sdk_version, last_sent_at)"
        " SELECT v.id, v.name, string_to_array(v.workflows, ','), v.slots, v.running,"
        "   string_to_array(v.held, ','), now(), v.state, v.version, v.sdk_version, v.sent_at"
        " FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::int[], %s::text[],"
        "   %s::text[], %s::text[], %s::text[], %s::float8[])"
        "   AS v(id, name, workflows, slots, running, held, state, version, sdk_version,"
        "   sent_at)"
        " ON CONFLICT (id) DO UPDATE SET last_heartbeat_at = now(), running = EXCLUDED.running,"
        "   held = EXCLUDED.held,"
        "   slots = EXCLUDED.slots, workflows = EXCLUDED.workflows, state = EXCLUDED.state,"
        "   version = EXCLUDED.version, sdk_version = EXCLUDED.sdk_version,"
        "   last_sent_at = EXCLUDED.last_sent_at"
        " WHERE workers.last_sent_at IS NULL OR workers.last_sent_at <= EXCLUDED.last_sent_at",
        (
            [b.worker_id for b in latest],
            [b.name for b in latest],
            [",".join(b.workflows) for b in latest],
            [b.slots for b in latest],
            [len(b.running) for b in latest],
            [",".join(b.held) for b in latest],
            [b.state for b in latest],
            [b.version for b in latest],
            [b.sdk_version for b in latest],
            [b.sent_at for b in latest],
        ),
    )


# RUNNING attempts whose worker has been silent (or never heard of) for `timeout` s;
# parameters: status, timeout, timeout.
