"""Structured logs: with ROOST_LOG_FORMAT=json every line a service or worker writes is
one JSON object, with the service's name and the run and task a line is about."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from harness import REPO, Stack


def _json_lines(log: Path) -> list[dict[str, Any]]:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line: one JSON object


def test_a_service_logs_one_json_object_per_line(stack: Stack) -> None:
    proc = stack.spawn(
        "ratelimiter-json",
        "ratelimiter",
        extra_env={"ROOST_LOG_FORMAT": "json", "ROOST_RATELIMITER_METRICS_PORT": "0"},
    )
    try:
        deadline = time.monotonic() + 30
        while "ratelimiter consuming" not in proc.log.read_text(errors="replace"):
            assert proc.popen.poll() is None, proc.tail()
            assert time.monotonic() < deadline, proc.tail()
            time.sleep(0.1)
    finally:
        proc.stop()
        stack.processes.remove(proc)
    lines = _json_lines(proc.log)
    consuming = next(line for line in lines if line["message"] == "ratelimiter consuming")
    assert consuming["service"] == "ratelimiter"
    assert consuming["level"] == "INFO"
    assert consuming["action"] == "ratelimiter_consuming"
    assert consuming["time"] and consuming["logger"].startswith("roost_ratelimiter")


def test_a_workers_lines_name_the_run_and_task_they_are_about(
    stack: Stack, flows: ModuleType
) -> None:
    worker = stack.start_worker(
        "roost_testapps.flows:json_logger",
        processes=1,
        threads=2,
        name="json-worker",
        extra_env={"ROOST_LOG_FORMAT": "json"},
    )
    try:
        ref = flows.json_logged.run({}, wait_for_result=False)
        assert flows.roost.runs.wait(ref.id, timeout=60).status == "FAILED"
        time.sleep(0.5)
    finally:
        worker.stop()
    lines = [line for line in _json_lines(worker.log) if line.get("run_id") == ref.id]
    said = next(line for line in lines if line["message"] == "about to refuse")
    failed = next(line for line in lines if line.get("action") == "task_failed")
    assert said["task"] == "refuse_loudly" and said["service"] == "worker"
    assert failed["task"] == "refuse_loudly" and "refused on purpose" in failed["error"]


def test_a_bad_log_format_is_refused_by_name(stack: Stack) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "roost.cli", "scheduler"],
        env={**stack.env, "ROOST_LOG_FORMAT": "xml"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "ROOST_LOG_FORMAT='xml'" in done.stderr and "json" in done.stderr


def test_standard_logging_in_a_task_names_its_run_and_reaches_the_runs_logs(
    stack: Stack, flows: ModuleType
) -> None:
    worker = stack.start_worker(
        "roost_testapps.flows:std_logger",
        processes=1,
        threads=2,
        name="std-logger",
        extra_env={"ROOST_LOG_FORMAT": "json"},
    )
    try:
        ref = flows.std_logged.run({"repo": "beads"}, wait_for_result=False)
        assert flows.roost.runs.wait(ref.id, timeout=60).status == "SUCCEEDED"
        time.sleep(0.5)
    finally:
        worker.stop()
    # In the run's logs, beside ctx.log lines: INFO and above, from sync and async tasks.
    logs, _ = flows.roost.runs.logs(ref.id)
    said = [(line["task"], line["message"]) for line in logs]
    assert ("clone", "INFO myapp.agent: cloning beads") in said
    assert ("review", "WARNING myapp.agent: review found 2 issues") in said
    assert not any("nobody asked" in message for _, message in said)
    # In the worker's own JSON lines: the run, workflow, task and attempt.
    lines = [line for line in _json_lines(worker.log) if line.get("logger") == "myapp.agent"]
    cloning = next(line for line in lines if line["message"] == "cloning beads")
    assert (cloning["run_id"], cloning["workflow"], cloning["task"], cloning["attempt"]) == (
        ref.id,
        "t-std-logged",
        "clone",
        1,
    )
    reviewing = next(line for line in lines if "review found" in line["message"])
    assert reviewing["run_id"] == ref.id and reviewing["task"] == "review"


def test_in_the_text_format_a_tasks_lines_name_its_run_too(stack: Stack, flows: ModuleType) -> None:
    worker = stack.start_worker(
        "roost_testapps.flows:std_logger", processes=1, threads=2, name="std-logger-text"
    )
    try:
        ref = flows.std_logged.run({"repo": "text"}, wait_for_result=False)
        assert flows.roost.runs.wait(ref.id, timeout=60).status == "SUCCEEDED"
        time.sleep(0.5)
    finally:
        worker.stop()
    text = worker.log.read_text(errors="replace")
    line = next(x for x in text.splitlines() if "cloning text" in x)
    assert f"[run={ref.id} workflow=t-std-logged task=clone attempt=1]" in line
