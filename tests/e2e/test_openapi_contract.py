"""The api's OpenAPI document is one a client can rely on: schemathesis generates
requests for every operation from the document alone, sends them to a running api, and
runs all its checks on the answers (no server error; every status code, content type and
body as documented; schema-valid requests accepted, schema-invalid ones refused; 405s
that name the allowed methods); and a client generated from the document by
openapi-python-client triggers a run and reads it back.

Which 4xx answers to schema-valid requests are right, and why, is in
``tests/e2e/schemathesis.toml`` (a value the schema cannot constrain, such as a cron
expression, is checked by the api)."""

from __future__ import annotations

import base64
import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import Stack

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = 25  # per operation and phase: enough to find what the runs here found


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: schemathesis registers workflows, pushes events and makes
    rate-limit keys, none of which other tests should see."""
    s = Stack(tmp_path_factory.mktemp("contract"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def api(contract: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=contract.api_url, timeout=30, headers={"Authorization": f"Bearer {contract.token}"}
    ) as client:
        yield client


def _made(api: httpx.Client) -> dict[str, str]:
    """One of each resource, so that generated requests can reach past "not found":
    their ids become schemathesis' values for the path parameters of those names."""
    name = f"contract-{uuid.uuid4().hex[:8]}"
    r = api.post("/api/v1/workflows", json={"name": name, "tasks": [{"name": "only"}]})
    assert r.status_code == 201, r.text
    run = api.post(f"/api/v1/workflows/{name}/runs", json={"input": {}}).json()
    cron = api.post(
        "/api/v1/crons", json={"workflow": name, "name": "yearly", "expression": "0 0 1 1 *"}
    ).json()
    later = api.post("/api/v1/scheduled", json={"workflow": name, "delay_seconds": 86400}).json()
    event = api.post("/api/v1/events", json={"key": "contract:made"}).json()
    assert api.put("/api/v1/rate-limits/contract-key", json={"limit": 3}).status_code == 200
    cursor = base64.urlsafe_b64encode(f"{run['created_at']}|{run['id']}".encode()).decode()
    return {
        "path.name": name,
        "path.run_id": run["id"],
        "path.task": "only",
        "path.cron_id": cron["id"],
        "path.scheduled_id": later["id"],
        "path.event_id": event["id"],
        "path.key": "contract-key",
        # A cursor is opaque: only what the api handed out is one.
        "query.cursor": cursor,
    }


def test_every_operation_keeps_to_the_document(
    contract: Stack, api: httpx.Client, tmp_path: Path
) -> None:
    values = _made(api)
    # A long poll waits up to 60 s by design; the generated waits would only be slow.
    lines = ["", "[parameters]", *(f'"{k}" = "{v}"' for k, v in values.items()), '"query.wait" = 0']
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.read_text() + "\n".join(lines) + "\n")
    operations = sum(len(ops) for ops in api.get("/api/v1/openapi.json").json()["paths"].values())

    st = Path(sys.executable).with_name("st")
    done = subprocess.run(
        [
            str(st),
            "--config-file",
            str(config),
            "--no-color",
            "run",
            f"{contract.api_url}/api/v1/openapi.json",
            "--checks",
            "all",
            # `--checks all` overrides the config file's list: drop ST302 here too (why:
            # schemathesis.toml).
            "--exclude-checks",
            "ensure_resource_availability",
            "--header",
            f"Authorization: Bearer {contract.token}",
            "--max-examples",
            str(EXAMPLES),
            "--request-timeout",
            "30",
        ],
        cwd=tmp_path,  # its .schemathesis cache stays out of the checkout
        capture_output=True,
        text=True,
        timeout=600,
    )

    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-6000:]
    assert f"Tested: {operations}" in report, report[-3000:]


def test_the_document_declares_parameters_bodies_errors_and_security(api: httpx.Client) -> None:
    doc = api.get("/api/v1/openapi.json").json()

    assert doc["openapi"] == "3.1.0"
    get_run = doc["paths"]["/api/v1/runs/{run_id}"]["get"]
    params = {p["name"]: p for p in get_run["parameters"]}
    assert params["run_id"]["in"] == "path" and params["run_id"]["required"] is True
    assert params["wait"]["schema"]["type"] == "number"
    assert {"200", "400", "401", "404", "503"} <= set(get_run["responses"])
    error = get_run["responses"]["404"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorBody"}
    assert doc["components"]["schemas"]["BulkTriggerRequest"]["required"] == ["runs"]
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            public = path in ("/health", "/ready")
            assert op["security"] == ([] if public else [{"bearer": []}]), (method, path)


def test_what_cannot_be_stored_or_routed_is_a_json_client_error(api: httpx.Client) -> None:
    nul = api.post("/api/v1/events", content=b'{"key": "a", "data": {"x": "\\u0000"}}')
    assert nul.status_code == 400 and "NUL" in nul.json()["error"]["message"]
    in_query = api.get("/api/v1/runs", params={"workflow": "a\x00b"})
    assert in_query.status_code == 400 and in_query.json()["error"]["code"] == "bad_request"
    not_utf8 = api.post("/api/v1/events", content=b'{"key": "\xff"}')
    assert not_utf8.status_code == 400, not_utf8.text

    wrong_method = api.put("/api/v1/crons")
    assert wrong_method.status_code == 405
    assert {"GET", "POST"} <= set(wrong_method.headers["allow"].split(", "))
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    nowhere = api.get("/api/v1/nowhere")
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"


@pytest.fixture(scope="module")
def generated_client(contract: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Python client generated from the running api's document, imported."""
    where = tmp_path_factory.mktemp("generated")
    (where / "openapi.json").write_bytes(
        httpx.get(f"{contract.api_url}/api/v1/openapi.json", timeout=30).content
    )
    (where / "config.yaml").write_text(
        "post_hooks: []\npackage_name_override: roost_generated_client\n"
    )
    generator = Path(sys.executable).with_name("openapi-python-client")
    subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(where / "openapi.json"),
            "--config",
            str(where / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(where / "roost_generated_client"),
            "--fail-on-warning",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module("roost_generated_client")
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m.startswith("roost_generated_client")]:
            del sys.modules[name]


def test_a_generated_client_triggers_a_run_and_reads_it_back(
    contract: Stack, generated_client: Any
) -> None:
    def module(name: str) -> Any:
        return importlib.import_module(f"roost_generated_client.{name}")

    models = module("models")
    client = generated_client.AuthenticatedClient(base_url=contract.api_url, token=contract.token)
    name = f"generated-{uuid.uuid4().hex[:8]}"
    definition = models.WorkflowDefinition.from_dict(
        {"name": name, "tasks": [{"name": "only", "parents": []}]}
    )

    registered = module("api.workflows.register_workflow").sync(client=client, body=definition)
    assert isinstance(registered, models.Registered) and registered.created is True

    body = models.TriggerRequest.from_dict({"input": {"n": 1}, "metadata": {"who": "gen"}})
    created = module("api.workflows.trigger_run").sync(name, client=client, body=body)
    assert isinstance(created, models.TriggeredRunBody), created
    assert created.status == models.RunStatus.QUEUED

    get_run = module("api.runs.get_run")
    run = get_run.sync(created.id, client=client)
    assert isinstance(run, models.Run)
    assert run.id == created.id and run.workflow == name
    assert run.input_["n"] == 1 and run.metadata["who"] == "gen"
    assert [t.name for t in run.tasks] == ["only"]

    missing = get_run.sync(str(uuid.uuid4()), client=client)
    assert isinstance(missing, models.ErrorBody) and missing.error.code == "unknown_run"
