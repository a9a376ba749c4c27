"""Run metadata, for every client: string pairs attached at trigger time (SDK, HTTP,
CLI), returned with the run, and used to find runs again; event-triggered runs carry
their event's id and key."""

from __future__ import annotations

import json
import time
import uuid
from types import ModuleType

import httpx
import pytest

from harness import Process, Stack
from roost import InvalidInputError


def _headers(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}"}


def test_metadata_set_by_the_sdk_http_and_cli_finds_exactly_those_runs(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    tag = uuid.uuid4().hex[:8]  # this test's runs only
    sdk = flows.chain.run(
        {"task_id": "meta-1"},
        wait_for_result=False,
        metadata={"repo": "beads", "tag": tag},
    )
    bulk = flows.chain.run_many(
        [{"task_id": "meta-2"}, {"task_id": "meta-3"}], metadata={"repo": "other", "tag": tag}
    )
    resp = httpx.post(
        f"{stack.api_url}/api/v1/workflows/t-chain/runs",
        json={"input": {"task_id": "meta-4"}, "metadata": {"repo": "beads", "tag": tag}},
        headers=_headers(stack),
        timeout=10,
    )
    assert resp.status_code == 201 and resp.json()["metadata"] == {"repo": "beads", "tag": tag}
    http_id = resp.json()["id"]
    cli_out = stack.roost(
        "run",
        "t-chain",
        "--input",
        '{"task_id": "meta-5"}',
        "--meta",
        "repo=beads",
        "--meta",
        f"tag={tag}",
    )
    cli_id = cli_out.split()[1]

    # Returned with the run, by the SDK and the api alike.
    assert flows.roost.runs.get(sdk.id).metadata == {"repo": "beads", "tag": tag}
    assert flows.roost.runs.get(cli_id).metadata == {"repo": "beads", "tag": tag}

    # Found again: every pair must match.
    beads, _ = flows.roost.runs.list(meta={"repo": "beads", "tag": tag}, limit=50)
    assert {r.id for r in beads} == {sdk.id, http_id, cli_id}
    others = httpx.get(
        f"{stack.api_url}/api/v1/runs",
        params={"meta.repo": "other", "meta.tag": tag, "workflow": "t-chain"},
        headers=_headers(stack),
        timeout=10,
    ).json()["runs"]
    assert {r["id"] for r in others} == {r.id for r in bulk}
    listed = json.loads(stack.roost("runs", "list", "--meta", f"tag={tag}", "--json"))
    assert len(listed) == 5 and all(r["metadata"]["tag"] == tag for r in listed)
    # A time window: nothing of these was created before the epoch's first day ended.
    early, _ = flows.roost.runs.list(meta={"tag": tag}, until=86400.0)
    assert early == []
    recent, _ = flows.roost.runs.list(meta={"tag": tag}, since=time.time() - 600)
    assert len(recent) == 5


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({"repo": 3}, "repo"),
        ({"bad key!": "x"}, "bad key!"),
        ({"repo": "x" * 513}, "repo"),
    ],
)
def test_bad_metadata_is_refused_naming_the_pair_and_creates_nothing(
    stack: Stack, metadata: dict[str, object], named: str
) -> None:
    before = stack.sql("SELECT count(*) FROM runs")[0][0]
    resp = httpx.post(
        f"{stack.api_url}/api/v1/workflows/t-chain/runs",
        json={"input": {"task_id": "bad-meta"}, "metadata": metadata},
        headers=_headers(stack),
        timeout=10,
    )
    assert resp.status_code in (400, 422), resp.text
    assert named in resp.json()["error"]["message"]
    assert stack.sql("SELECT count(*) FROM runs")[0][0] == before


def test_bad_metadata_is_refused_by_the_sdk_and_cli_before_sending(
    stack: Stack, flows: ModuleType
) -> None:
    with pytest.raises(InvalidInputError, match="bad key!"):
        flows.chain.run({"task_id": "x"}, wait_for_result=False, metadata={"bad key!": "x"})
    with pytest.raises(InvalidInputError, match="strings"):
        flows.chain.run({"task_id": "x"}, wait_for_result=False, metadata={"n": 1})
    done = stack.roost("run", "t-chain", "--meta", "no-equals-sign", check=False)
    assert done == ""  # refused: nothing printed to stdout, nothing triggered
    bad = httpx.get(
        f"{stack.api_url}/api/v1/runs",
        params={"since": "yesterday"},
        headers=_headers(stack),
        timeout=10,
    )
    assert bad.status_code == 400 and "since='yesterday'" in bad.json()["error"]["message"]


def test_an_event_triggered_run_carries_its_events_id_and_key(
    stack: Stack, flows: ModuleType
) -> None:
    wf = flows.roost.workflow("m-on-event", on_events=["meta:*"])

    @wf.task()
    def only(input: dict, ctx: object) -> dict:
        return {}

    wf.register()
    pushed = flows.roost.events.push("meta:made", {"n": 1})
    (started,) = [r for r in pushed.runs if r.workflow == "m-on-event"]
    run = flows.roost.runs.get(started.id)
    assert run.metadata == {"event_id": pushed.id, "event_key": "meta:made"}
    found, _ = flows.roost.runs.list(meta={"event_key": "meta:made"})
    assert started.id in {r.id for r in found}
    flows.roost.runs.cancel(started.id)


def test_tasks_read_their_runs_metadata(
    stack: Stack, flows: ModuleType, basic_worker: Process
) -> None:
    tag = uuid.uuid4().hex[:8]
    output = flows.metadata_reader.run({}, metadata={"repo": "beads", "tag": tag})
    # The root task (sent by the trigger) and its child (sent by the scheduler) alike.
    assert output["read_metadata"] == {"repo": "beads", "tag": tag}
    assert output["read_metadata_again"] == {"repo": "beads", "tag": tag}
    assert flows.metadata_reader.run({})["read_metadata_again"] == {}
