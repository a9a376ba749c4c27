"""The durable event log: every lifecycle change and everything a task emits, in order,
in PostgreSQL, with gapless per-run sequence numbers."""

from __future__ import annotations

import json
from types import ModuleType

from harness import Process, Stack


def _events(stack: Stack, run_id: str) -> list[tuple[object, ...]]:
    return stack.sql(
        "SELECT seq, type, task, attempt, data FROM events WHERE run_id = %s ORDER BY id",
        run_id,
    )


def test_a_runs_events_are_logged_in_order_with_what_its_tasks_said(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.chatty.run({"chunks": 3}, wait_for_result=False)
    ref.result(timeout=60)

    rows = _events(stack, ref.id)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))  # gapless, in id order
    typed = [(r[1], r[2]) for r in rows]
    assert typed == [
        ("run.queued", None),
        ("task.queued", "fetch"),
        ("run.started", None),
        ("task.started", "fetch"),
        ("task.log", "fetch"),
        ("task.stream", "fetch"),
        ("task.stream", "fetch"),
        ("task.stream", "fetch"),
        ("task.progress", "fetch"),
        ("task.succeeded", "fetch"),
        ("task.queued", "report"),
        ("task.started", "report"),
        ("task.log", "report"),
        ("task.progress", "report"),
        ("task.succeeded", "report"),
        ("run.succeeded", None),
    ]
    data = {(r[1], r[2]): r[4] for r in rows}
    assert data[("task.log", "fetch")] == {"message": "cloning repository"}
    assert [r[4] for r in rows if r[1] == "task.stream"] == [
        {"tokens": 100},
        {"tokens": 200},
        {"tokens": 300},
    ]
    assert data[("task.progress", "fetch")] == {"fraction": 0.5, "message": "running tests"}
    assert data[("task.succeeded", "fetch")]["output"] == {"fetched": True}
    assert data[("run.succeeded", None)]["output"]["report"] == {"reported": True}
    assert all(r[3] == 1 for r in rows if r[2] is not None)


def test_a_failed_and_retried_task_logs_retrying_then_failed(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    ref = flows.failing.run({}, wait_for_result=False)
    run = flows.roost.runs.wait(ref.id, timeout=60)
    assert run.status == "FAILED"

    rows = _events(stack, ref.id)
    types = [(r[1], r[2]) for r in rows]
    assert ("task.failed", "explode") in types
    assert ("task.cancelled", "after_explode") in types
    assert types[-1] == ("run.failed", None)
    failed = next(r for r in rows if r[1] == "task.failed")
    assert failed[4]["error"]["type"] and failed[4]["error"]["message"]
    final = rows[-1][4]
    assert "explode" in json.dumps(final["error"])
