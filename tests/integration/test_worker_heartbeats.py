"""Worker heartbeats as the scheduler stores them and the api reads them back: a late,
older heartbeat never undoes a newer one, and silence makes any worker dead but one
that said it stopped."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from harness import Stack
from roost_core.engine.workers import record_heartbeats
from roost_core.wire import WorkerHeartbeat


def _beat(worker_id: str, state: str, sent_at: float, **more: Any) -> WorkerHeartbeat:
    return WorkerHeartbeat.model_validate(
        {
            "worker_id": worker_id,
            "name": "beats",
            "workflows": ["a", "b"],
            "slots": 2,
            "sent_at": sent_at,
            "state": state,
            **more,
        }
    )


def _listed(stack: Stack) -> dict[str, dict[str, Any]]:
    workers = stack.api_get("/api/v1/workers")["workers"]
    return {w["id"]: w for w in workers if w["name"] == "beats"}


def test_an_older_heartbeat_handled_late_does_not_undo_a_newer_one(stack: Stack) -> None:
    wid = f"beats@host:{uuid.uuid4().hex[:6]}"
    with psycopg.connect(stack.database_url) as conn:
        record_heartbeats(conn, [_beat(wid, "alive", 1.0, version="1.0", sdk_version="0.1.0")])
        record_heartbeats(conn, [_beat(wid, "stopped", 3.0, version="1.0", sdk_version="0.1.0")])
        # Another scheduler replica handles the draining beat sent in between, late.
        record_heartbeats(conn, [_beat(wid, "draining", 2.0, version="1.0")])
    listed = _listed(stack)[wid]
    assert (listed["status"], listed["version"], listed["sdk_version"]) == (
        "stopped",
        "1.0",
        "0.1.0",
    )


def test_silence_makes_a_draining_worker_dead_but_a_stopped_one_stays_stopped(
    stack: Stack,
) -> None:
    ids = {
        state: f"beats@host:{state}-{uuid.uuid4().hex[:6]}"
        for state in ("alive", "draining", "stopped")
    }
    with psycopg.connect(stack.database_url) as conn:
        record_heartbeats(conn, [_beat(wid, state, 1.0) for state, wid in ids.items()])
    assert {w["status"] for i, w in _listed(stack).items() if i in ids.values()} == {
        "alive",
        "draining",
        "stopped",
    }
    # Last heard from an hour ago: far past the api's heartbeat timeout.
    with psycopg.connect(stack.database_url) as conn:
        conn.execute(
            "UPDATE workers SET last_heartbeat_at = now() - interval '1 hour' WHERE id = ANY(%s)",
            (list(ids.values()),),
        )
    listed = _listed(stack)
    assert {state: listed[wid]["status"] for state, wid in ids.items()} == {
        "alive": "dead",
        "draining": "dead",
        "stopped": "stopped",
    }
