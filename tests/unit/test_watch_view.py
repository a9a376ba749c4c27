"""The live run view (`roost run --watch`) follows a run's events."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from roost._models import Run
from roost._stream import RunEvent
from roost._watch import RunView


def _run() -> Run:
    now = datetime.now(UTC)
    return Run.model_validate(
        {
            "id": "r1",
            "workflow": "wf",
            "status": "QUEUED",
            "created_at": now,
            "tasks": [
                {"id": "a", "name": "clone", "status": "QUEUED", "parents": [], "attempt": 1},
                {
                    "id": "b",
                    "name": "test",
                    "status": "PENDING",
                    "parents": ["clone"],
                    "attempt": 0,
                },
            ],
        }
    )


def _ev(
    seq: int, type: str, task: str | None = None, data: object = None, at: float = 0
) -> RunEvent:
    return RunEvent(
        id=seq,
        seq=seq,
        run_id="r1",
        workflow="wf",
        type=type,
        task=task,
        attempt=1,
        data=data,
        at=at or 1000.0 + seq,
    )


def _text(view: RunView) -> str:
    console = Console(width=160, record=True)
    console.print(view.render(now=1010.0))
    return console.export_text()


def test_the_view_moves_each_task_through_its_states() -> None:
    view = RunView(_run())
    view.apply(_ev(1, "run.started"))
    view.apply(_ev(2, "task.started", "clone", {"worker_id": "w"}))
    view.apply(_ev(3, "task.progress", "clone", {"fraction": 0.4, "message": "running tests"}))
    assert view.tasks["clone"].status == "RUNNING"
    assert view.tasks["clone"].progress == 0.4
    assert "running tests" in _text(view)

    view.apply(_ev(4, "task.succeeded", "clone", {"output": 1, "duration": 2.0}))
    view.apply(_ev(5, "task.queued", "test"))
    view.apply(
        _ev(
            6,
            "task.retrying",
            "test",
            {"error": {"type": "Boom", "message": "x"}, "next_attempt": 2},
        )
    )
    assert view.tasks["clone"].status == "SUCCEEDED"
    assert view.tasks["test"].status == "RETRYING"
    assert "retrying (attempt 2): Boom: x" in _text(view)

    view.apply(_ev(7, "task.failed", "test", {"error": {"type": "Boom", "message": "again"}}))
    view.apply(_ev(8, "run.failed", None, {"error": {"message": "task(s) failed: test"}}))
    assert view.ended and view.status == "FAILED"
    text = _text(view)
    assert "run FAILED" in text and "task(s) failed: test" in text
