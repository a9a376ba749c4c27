"""The real ``roost`` command line, run as a subprocess against the session's stack."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass

import httpx
import pytest

from harness import REPO, Process, Stack, free_port

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CHAIN_TASKS = ["check_deps", "process", "verify", "commit"]


def roost(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``roost ARGS`` with the stack's environment (plus ``env``); never raises."""
    return subprocess.run(
        [sys.executable, "-m", "roost.cli", *args],
        env={**stack.env, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def flat(text: str) -> str:
    """``text`` with every run of whitespace made one space (Rich wraps at 80 columns)."""
    return " ".join(text.split())


@dataclass(frozen=True)
class CliRun:
    done: subprocess.CompletedProcess[str]
    run_id: str


@pytest.fixture(scope="module")
def chain_run(stack: Stack, basic_worker: Process) -> CliRun:
    """One ``roost run t-chain --wait`` for the module's tests to inspect."""
    done = roost(stack, "run", "t-chain", "--input", '{"task_id": "cli-1"}', "--wait")
    found = UUID_RE.search(done.stdout)
    assert found, done.stdout + done.stderr
    return CliRun(done, found.group(0))


def test_roost_run_with_wait_prints_the_run_id_its_status_and_each_task(
    chain_run: CliRun,
) -> None:
    done = chain_run.done

    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith(f"run {chain_run.run_id} ")  # the id comes at once
    assert "SUCCEEDED" in done.stdout
    assert f"{chain_run.run_id} of t-chain" in flat(done.stdout)
    for task in CHAIN_TASKS:
        assert task in done.stdout
    assert done.stderr == ""


def test_roost_runs_list_as_json_includes_the_run(stack: Stack, chain_run: CliRun) -> None:
    done = roost(stack, "runs", "list", "--workflow", "t-chain", "--json", "--limit", "100")

    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)
    assert all(r["workflow"] == "t-chain" for r in runs)
    [mine] = [r for r in runs if r["id"] == chain_run.run_id]
    assert mine["status"] == "SUCCEEDED"
    assert mine["created_at"] and mine["finished_at"]


def test_roost_runs_list_by_an_unknown_status_fails_naming_it(stack: Stack) -> None:
    done = roost(stack, "runs", "list", "--status", "DONE")

    assert done.returncode != 0
    assert "'DONE'" in done.stderr and "SUCCEEDED" in done.stderr
    assert done.stdout == ""


def test_roost_runs_show_as_json_has_four_succeeded_tasks(stack: Stack, chain_run: CliRun) -> None:
    done = roost(stack, "runs", "show", chain_run.run_id, "--json")

    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["id"] == chain_run.run_id
    assert run["workflow"] == "t-chain" and run["status"] == "SUCCEEDED"
    assert run["input"] == {"task_id": "cli-1"}
    assert [t["name"] for t in run["tasks"]] == CHAIN_TASKS
    assert [t["status"] for t in run["tasks"]] == ["SUCCEEDED"] * 4
    assert run["tasks"][-1]["output"]["task_id"] == "cli-1"


def test_roost_runs_show_prints_a_table_of_the_tasks(stack: Stack, chain_run: CliRun) -> None:
    done = roost(stack, "runs", "show", chain_run.run_id)

    assert done.returncode == 0, done.stderr
    assert f"run {chain_run.run_id} of t-chain" in flat(done.stdout)
    for task in CHAIN_TASKS:
        assert re.search(rf"\b{task}\b.*SUCCEEDED", done.stdout), task


def test_the_run_table_of_roost_run_wait_prints_every_task_name_in_full_at_80_columns(
    stack: Stack, basic_worker: Process
) -> None:
    done = roost(
        stack, "run", "t-failing", "--input", '{"task_id": "cli-f"}', "--wait", COLUMNS="80"
    )

    assert done.returncode == 1
    assert "FAILED" in done.stdout
    for task in ["begin", "explode", "after_explode", "independent"]:
        assert re.search(rf"│ {task}\s", done.stdout), (task, done.stdout)


def test_roost_run_with_input_that_is_not_json_fails_naming_the_input(stack: Stack) -> None:
    done = roost(stack, "run", "t-chain", "--input", "not json")

    assert done.returncode != 0
    assert "--input is not valid JSON" in flat(done.stderr)
    assert "'not json'" in done.stderr
    assert done.stdout == ""


def test_roost_run_of_an_unknown_workflow_fails_saying_it_is_not_registered(
    stack: Stack,
) -> None:
    done = roost(stack, "run", "nope")

    assert done.returncode != 0
    assert "'nope'" in done.stderr and "not registered" in done.stderr
    assert done.stdout == ""


def test_roost_runs_show_of_an_unknown_run_fails_naming_the_id(stack: Stack) -> None:
    run_id = str(uuid.uuid4())

    done = roost(stack, "runs", "show", run_id)

    assert done.returncode != 0
    assert run_id in done.stderr and "not found" in done.stderr
    assert done.stdout == ""


def test_roost_run_with_wait_that_times_out_fails_naming_the_run(
    stack: Stack, basic_worker: Process
) -> None:
    done = roost(stack, "run", "t-diamond", "--input", '{"seed": 1}', "--wait", "--timeout", "0.1")

    assert done.returncode == 1
    run_id = done.stdout.split()[1]
    assert UUID_RE.fullmatch(run_id)
    assert f"run {run_id} did not end within 0.1 s" in flat(done.stderr)


def test_roost_doctor_says_ok_for_the_api_the_broker_and_the_database(stack: Stack) -> None:
    done = roost(stack, "doctor")

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for check in ("api", "broker", "database"):
        assert any(line.startswith(f"ok   {check}:") for line in lines), (check, done.stdout)
    assert "FAIL" not in done.stdout


def test_roost_doctor_with_no_api_listening_fails_the_api_check_with_a_fix(stack: Stack) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    done = roost(stack, "doctor", ROOST_API_URL=url)

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(line.startswith("FAIL api:") for line in lines), done.stdout
    text = flat(done.stdout)
    assert f"cannot reach the Roost api at {url}" in text
    assert "fix: start it with `roost api`" in text and "ROOST_API_URL" in text
    assert any(line.startswith("ok   broker:") for line in lines), done.stdout
    assert any(line.startswith("ok   database:") for line in lines), done.stdout


def test_roost_token_create_prints_a_token_the_api_accepts(stack: Stack) -> None:
    token = stack.roost("token", "create", "--name", "x").strip()
    other = stack.roost("token", "create", "--name", "x").strip()

    assert token.startswith("rst_") and len(token) > 20
    assert other != token

    def workflows(with_token: str) -> httpx.Response:
        return httpx.get(
            f"{stack.api_url}/api/v1/workflows",
            headers={"Authorization": f"Bearer {with_token}"},
            timeout=30,
        )

    r = workflows(token)
    assert r.status_code == 200
    # A new token belongs to the same (default) tenant as the stack's own token.
    assert r.json() == workflows(stack.token).json()
    assert workflows(other).status_code == 200
