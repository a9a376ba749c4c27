"""A trigger of a workflow no live worker serves is accepted, and says so (issue #20):
the api's 201 carries ``warning``, the SDK raises it as a RoostWarning (once a minute
per workflow per client), ``roost run`` prints it on stderr, and the dashboard's
workflow page shows "no worker". A served workflow (the basic worker's t-chain) gets
none of it. Real processes throughout."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest

import roost
from harness import REPO, Process, Stack

UNSERVED = "no live worker serves workflow 't-unserved': its runs wait until one starts"


@pytest.fixture(scope="module")
def registered(flows: ModuleType, basic_worker: Process) -> ModuleType:
    flows.unserved.register()
    flows.chain.register()
    return flows


def _post(stack: Stack, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(
        f"{stack.api_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    found: dict[str, Any] = resp.json()
    return found


def _served_chain(stack: Stack) -> dict[str, Any]:
    """A t-chain trigger's answer once the api has seen the basic worker's heartbeat
    (its served set is re-read at most every 2 s)."""
    deadline = time.monotonic() + 10
    while True:
        body = _post(stack, "/api/v1/workflows/t-chain/runs", {"input": {"task_id": "served"}})
        if "warning" not in body or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def test_the_api_warns_of_a_trigger_no_live_worker_serves(
    stack: Stack, registered: ModuleType
) -> None:
    one = _post(stack, "/api/v1/workflows/t-unserved/runs", {"input": {}})
    assert one["warning"] == UNSERVED
    assert one["status"] == "QUEUED"  # created all the same
    bulk = _post(stack, "/api/v1/workflows/t-unserved/runs/bulk", {"runs": [{"input": {}}] * 2})
    assert bulk["warning"] == UNSERVED and len(bulk["runs"]) == 2
    assert "warning" not in _served_chain(stack)
    many = _post(
        stack, "/api/v1/workflows/t-chain/runs/bulk", {"runs": [{"input": {"task_id": "b"}}]}
    )
    assert "warning" not in many


def _unserved_twin(client: roost.Roost) -> roost.Workflow:
    """A workflow of this test's own on a fresh client (so no other test's trigger has
    used up the client's once-a-minute warning), served by no worker."""
    wf = client.workflow(f"t-unserved-{uuid.uuid4().hex[:8]}")
    wf.task("only")(_never_run)
    return wf


def _never_run(input: dict[str, Any], ctx: roost.Context) -> dict[str, Any]:
    return {}


def test_the_sdk_raises_a_roost_warning_once_a_minute_per_workflow(
    stack: Stack, registered: ModuleType
) -> None:
    wf = _unserved_twin(roost.Roost())
    with pytest.warns(roost.RoostWarning, match=f"no live worker serves workflow '{wf.name}'") as w:
        wf.run({}, wait_for_result=False)
    assert w[0].filename == __file__  # it points at the caller's line, not the SDK's
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        wf.run_many([{}, {}])  # the same client, within the minute: not again
    assert not [x for x in again if issubclass(x.category, roost.RoostWarning)]

    other = _unserved_twin(roost.Roost())
    with pytest.warns(roost.RoostWarning, match=other.name):
        asyncio.run(other.aio_run_many([{}]))

    assert "warning" not in _served_chain(stack)
    with warnings.catch_warnings(record=True) as served:
        warnings.simplefilter("always")
        registered.chain.run({"task_id": "sdk"}, wait_for_result=False)
    assert not [x for x in served if issubclass(x.category, roost.RoostWarning)]


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roost.cli", *args],
        env=stack.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_roost_run_prints_the_warning_on_stderr(stack: Stack, registered: ModuleType) -> None:
    done = _cli(stack, "run", "t-unserved")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("run ")
    assert "warning:" in done.stderr and UNSERVED in done.stderr.replace("\n", "")
    _served_chain(stack)
    done = _cli(stack, "run", "t-chain", "--input", '{"task_id": "cli"}')
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr


@pytest.fixture(scope="module")
def dashboard(stack: Stack) -> Iterator[str]:
    url, proc = stack.start_dashboard()
    yield url
    stack.stop_one(proc)


def test_the_workflow_page_shows_no_worker(
    stack: Stack, registered: ModuleType, dashboard: str
) -> None:
    with httpx.Client(base_url=dashboard, timeout=10) as client:
        assert client.post("/sign-in", data={"token": stack.token}).status_code == 303
        unserved = client.get("/workflows/t-unserved")
        served = client.get("/workflows/t-chain")
    assert unserved.status_code == 200 and served.status_code == 200
    workers = re.compile(r'<dd id="workflow-workers">(.*?)</dd>', re.DOTALL)
    found = workers.search(unserved.text)
    assert found and "no worker" in found.group(1), unserved.text
    found = workers.search(served.text)
    assert found and re.search(r"\d+ live workers?", found.group(1)), served.text
