"""Worker labels (issue #21) as the scheduler stores them and the api reads them back:
each heartbeat's set replaces the last, types kept (strings, ints, floats); a late,
older heartbeat never undoes a newer set; what jsonb cannot hold never reaches it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg

from harness import Stack
from roost_core.engine.workers import record_heartbeats
from roost_core.wire import WorkerHeartbeat


def _beat(worker_id: str, sent_at: float, labels: Any = None) -> WorkerHeartbeat:
    body: dict[str, Any] = {
        "worker_id": worker_id,
        "name": "labels",
        "workflows": ["a"],
        "slots": 2,
        "sent_at": sent_at,
    }
    if labels is not None:
        body["labels"] = labels
    return WorkerHeartbeat.model_validate(body)


def _labels(stack: Stack, worker_id: str) -> Any:
    one = stack.api_get(f"/api/v1/workers/{worker_id.replace(':', '%3A')}")
    listed = {w["id"]: w for w in stack.api_get("/api/v1/workers")["workers"]}
    assert listed[worker_id]["labels"] == one["labels"]
    return one["labels"]


def test_labels_are_stored_with_their_types_and_each_newer_set_replaces_the_last(
    stack: Stack,
) -> None:
    wid = f"labels@host:{uuid.uuid4().hex[:6]}"
    other = f"labels@host:{uuid.uuid4().hex[:6]}"
    first = {"gpu": "a100", "memory_gb": 64, "ratio": 0.5, "zone": "eu-west/1 ünï"}
    with psycopg.connect(stack.database_url) as conn:
        record_heartbeats(conn, [_beat(wid, 1.0, first), _beat(other, 1.0)])
    assert _labels(stack, wid) == first
    assert type(_labels(stack, wid)["memory_gb"]) is int
    assert _labels(stack, other) == {}  # a heartbeat without labels: unlabelled

    with psycopg.connect(stack.database_url) as conn:
        record_heartbeats(conn, [_beat(wid, 3.0, {"gpu": "h100"})])
        # Another scheduler replica handles a beat sent in between, late: no effect.
        record_heartbeats(conn, [_beat(wid, 2.0, first)])
    assert _labels(stack, wid) == {"gpu": "h100"}


def test_labels_jsonb_cannot_hold_are_dropped_and_the_batch_still_applies(stack: Stack) -> None:
    wid = f"labels@host:{uuid.uuid4().hex[:6]}"
    labels = '{"nul": "a\\u0000b", "nan": NaN, "ok": "yes", "inf": -Infinity}'
    body = (
        json.dumps(
            {"worker_id": wid, "name": "labels", "workflows": ["a"], "slots": 2, "sent_at": 1}
        )[:-1]
        + f', "labels": {labels}}}'
    )
    with psycopg.connect(stack.database_url) as conn:
        record_heartbeats(conn, [WorkerHeartbeat.model_validate_json(body)])
    assert _labels(stack, wid) == {"ok": "yes"}
