"""Worker labels (issue #21, first slice): checked when the worker is declared and when
``set_labels`` changes them, carried by every heartbeat (the next one after a change
carries the new set), compatible both ways on the wire, stored as JSON text for the
scheduler's upsert, and shown by `roost workers list` and the dashboard. Pure: no
broker, no database."""

from __future__ import annotations

import json
import math
import re
import threading
import warnings
from typing import Any

import pytest

import roost
from roost._delivery import Delivery
from roost._heartbeats import Heartbeats
from roost._worker import Worker
from roost.cli.workers import label_text
from roost_core.api_shapes import WorkerInfo
from roost_core.engine.workers import record_heartbeats
from roost_core.wire import WORKER_LABEL_VALUE_MAX, WORKER_LABELS_MAX, WorkerHeartbeat
from roost_dashboard.app import create_app
from roost_dashboard.security import SESSION_COOKIE
from roost_dashboard.settings import DashboardSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2
    from starlette.testclient import TestClient

LABELS = {"gpu": "a100", "region": "eu", "memory_gb": 64}


def _client() -> roost.Roost:
    return roost.Roost(api_url="http://api.test", token="t", tls_strategy="none")


def _workflow(client: roost.Roost) -> roost.Workflow:
    wf = client.workflow("wf")

    @wf.task()
    def only(input: dict, ctx: roost.Context) -> None: ...

    return wf


def _worker(**options: Any) -> Worker:
    client = _client()
    return client.worker("beads", [_workflow(client)], **options)


# -- declaring and changing them ----------------------------------------------------------


def test_labels_given_to_the_worker_are_kept_and_read_as_a_copy() -> None:
    worker = _worker(labels=LABELS)
    assert worker.labels == LABELS
    worker.labels["gpu"] = "h100"  # a copy: changing it changes nothing
    assert worker.labels["gpu"] == "a100"
    assert _worker().labels == {}


@pytest.mark.parametrize(
    ("labels", "named"),
    [
        ({"bad key": "x"}, "'bad key'"),
        ({".hidden": "x"}, "'.hidden'"),
        ({"": "x"}, "''"),
        ({"k" * 65: "x"}, "'kkkk"),
        ({"gpu": True}, "'gpu'"),  # a bool is not a number here
        ({"gpu": None}, "'gpu'"),
        ({"gpu": ["a100"]}, "'gpu'"),
        ({"gpu": "x" * (WORKER_LABEL_VALUE_MAX + 1)}, f"{WORKER_LABEL_VALUE_MAX} characters"),
        ({"gpu": "a\x00"}, "'gpu'"),
        ({"memory_gb": math.nan}, "'memory_gb'"),
        ({"memory_gb": math.inf}, "'memory_gb'"),
        ({"memory_gb": 2**64}, "'memory_gb'"),
        ({f"k{i}": i for i in range(WORKER_LABELS_MAX + 1)}, f"at most {WORKER_LABELS_MAX}"),
    ],
)
def test_a_bad_label_is_refused_at_declaration_naming_it(
    labels: dict[str, Any], named: str
) -> None:
    with pytest.raises(roost.InvalidDefinitionError, match="beads") as raised:
        _worker(labels=labels)
    assert named in str(raised.value)


def test_labels_at_the_limits_are_taken() -> None:
    labels: dict[str, Any] = {f"k{i}": i for i in range(WORKER_LABELS_MAX - 3)}
    labels |= {"long": "x" * WORKER_LABEL_VALUE_MAX, "ratio": -0.5, "big": 2**63 - 1}
    assert _worker(labels=labels).labels == labels


def test_set_labels_replaces_them_whole_and_a_bad_set_changes_nothing() -> None:
    worker = _worker(labels=LABELS)
    worker.set_labels({"gpu": "h100"})
    assert worker.labels == {"gpu": "h100"}
    with pytest.raises(roost.InvalidDefinitionError, match="'region'"):
        worker.set_labels({"gpu": "a100", "region": object()})
    assert worker.labels == {"gpu": "h100"}
    worker.set_labels({})
    assert worker.labels == {}


def test_set_labels_from_many_threads_leaves_one_whole_set() -> None:
    worker = _worker(labels=LABELS)
    sets = [{"n": i, "twice": 2 * i} for i in range(50)]
    threads = [threading.Thread(target=worker.set_labels, args=(s,)) for s in sets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert worker.labels in sets


def test_labels_do_not_change_the_workflows_version() -> None:
    client = _client()
    wf = _workflow(client)
    before = wf.definition().version_hash()
    client.worker("beads", [wf], labels=LABELS)
    assert wf.definition().version_hash() == before


# -- heartbeats ---------------------------------------------------------------------------


def _heartbeats(worker: Worker) -> Heartbeats:
    return Heartbeats(worker._identity(), worker.roost.settings, Delivery(), dict)


def _beat(heartbeats: Heartbeats) -> WorkerHeartbeat:
    return WorkerHeartbeat.model_validate_json(heartbeats.beat().body)


def test_every_heartbeat_carries_the_labels_and_the_next_one_after_a_change_the_new_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = _worker(labels=LABELS)
    heartbeats = _heartbeats(worker)
    assert _beat(heartbeats).labels == LABELS
    assert type(_beat(heartbeats).labels["memory_gb"]) is int

    worker.set_labels({"gpu": "a100", "memory_gb": 80.5})  # before heart-beating: no beat
    assert _beat(heartbeats).labels == {"gpu": "a100", "memory_gb": 80.5}

    worker.heartbeats = heartbeats  # as setup_broker leaves it
    beats: list[float] = []
    monkeypatch.setattr(heartbeats.reporter, "beat_now", lambda timeout=0.0: beats.append(timeout))
    worker.set_labels({"region": "us"})
    assert beats == [0.0]  # the next heartbeat goes at once, not waited for
    assert _beat(heartbeats).labels == {"region": "us"}


_BEAT = {"worker_id": "w@h:1", "name": "w", "workflows": ["a"], "slots": 2, "sent_at": 1.0}


def test_a_heartbeat_without_labels_parses_as_unlabelled() -> None:
    assert WorkerHeartbeat.model_validate_json(json.dumps(_BEAT)).labels == {}


def test_labels_a_worker_would_refuse_are_dropped_from_a_heartbeat_not_the_heartbeat() -> None:
    body = json.dumps({**_BEAT, "labels": {"gpu": "a100", "memory_gb": 64}})[:-1]
    body += ', "extra": 1}'
    assert WorkerHeartbeat.model_validate_json(body).labels == {"gpu": "a100", "memory_gb": 64}
    odd = (
        '{"gpu": "a100", "n": NaN, "i": Infinity, "flag": true, "-x": 1, "list": [1],'
        ' "nul": "a\\u0000", "huge": 1' + "0" * 30 + ', "ratio": 0.5}'
    )
    beat = WorkerHeartbeat.model_validate_json(json.dumps(_BEAT)[:-1] + f', "labels": {odd}}}')
    assert beat.labels == {"gpu": "a100", "ratio": 0.5}
    many = {f"k{i}": i for i in range(WORKER_LABELS_MAX + 5)}
    assert len(WorkerHeartbeat.model_validate({**_BEAT, "labels": many}).labels) == (
        WORKER_LABELS_MAX
    )
    assert WorkerHeartbeat.model_validate({**_BEAT, "labels": ["gpu"]}).labels == {}


class _Conn:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def execute(self, query: Any, params: dict[str, Any]) -> None:
        self.sent.append(params)


def test_the_scheduler_stores_each_process_s_latest_labels_as_json_text() -> None:
    conn = _Conn()
    older = WorkerHeartbeat.model_validate({**_BEAT, "labels": {"gpu": "a100"}})
    newer = WorkerHeartbeat.model_validate({**_BEAT, "sent_at": 2.0, "labels": LABELS})
    plain = WorkerHeartbeat.model_validate({**_BEAT, "worker_id": "w@h:2"})
    record_heartbeats(conn, [newer, older, plain])
    [params] = conn.sent
    stored = dict(zip(params["ids"], params["labels"], strict=True))
    assert {k: json.loads(v) for k, v in stored.items()} == {"w@h:1": LABELS, "w@h:2": {}}


# -- shown --------------------------------------------------------------------------------


def test_the_api_shape_has_labels_and_an_older_api_s_answer_has_none() -> None:
    base = {"id": "w@h:1", "name": "w", "status": "alive"}
    assert WorkerInfo.model_validate({**base, "labels": LABELS}).labels == LABELS
    assert WorkerInfo.model_validate(base).labels == {}


def test_roost_workers_list_shows_labels_by_name_on_one_line() -> None:
    assert label_text(LABELS) == "gpu=a100 memory_gb=64 region=eu"
    assert label_text({}) == "-" and label_text(None) == "-"


class _FakeApi:
    def __init__(self, workers: list[dict[str, Any]]) -> None:
        self.workers = workers

    async def close(self) -> None:
        pass

    async def request(self, token: str, method: str, path: str, **_: Any) -> Any:
        assert path == "/api/v1/workers"
        return {"workers": self.workers}


def test_the_dashboard_workers_page_shows_labels_escaped_and_none_as_a_dash() -> None:
    worker = {
        "id": "beads@host:1",
        "name": "beads",
        "status": "alive",
        "workflows": ["wf"],
        "slots": 8,
        "running": 0,
        "started_at": None,
        "last_heartbeat_at": None,
    }
    api = _FakeApi(
        [
            {**worker, "labels": {"region": "eu", "gpu": "<a100>", "memory_gb": 64}},
            {**worker, "id": "beads@host:2", "labels": {}},
            {**worker, "id": "beads@host:3"},  # an older api: no labels at all
        ]
    )
    app = create_app(DashboardSettings(api_url="http://127.0.0.1:9"))
    app.state.dashboard.api = api
    client = TestClient(app, follow_redirects=False, cookies={SESSION_COOKIE: "rst_t"})
    page = client.get("/workers").text
    assert '<th scope="col">Labels</th>' in page
    cells = [c.strip() for c in re.findall(r'<td class="labels">(.*?)</td>', page, re.S)]
    assert cells[0] == (
        '<span class="pair">gpu=&lt;a100&gt;</span> <span class="pair">memory_gb=64</span> '
        '<span class="pair">region=eu</span>'
    )
    assert cells[1:] == ["-", "-"]
