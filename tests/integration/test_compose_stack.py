"""The docker-compose.yml stack, brought up for real with pytest-docker when a Docker
engine is reachable. Without one the stack is skipped here, and its files are checked
by parsing in tests/unit/test_deploy_files.py."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
API_PORT = 7077
NO_ENGINE = "no Docker engine: the compose stack is checked by tests/unit/test_deploy_files.py"


def _docker_engine_reachable() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _host_ports_in_use() -> list[int]:
    """Host ports the compose file publishes that something here already listens on
    (a local RabbitMQ from `just up`, say): `docker compose up` could not bind them."""
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    busy = []
    for svc in doc["services"].values():
        for entry in svc.get("ports") or []:
            parts = str(entry).split("/")[0].split(":")
            if len(parts) < 2 or not parts[-2].isdigit():
                continue
            port = int(parts[-2])
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    busy.append(port)
            except OSError:
                pass
    return busy


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# pytest-docker's own fixtures, pointed at the repository's compose file.
@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    # Not pytest-docker's default `up --build --wait`: --wait can fail on the one-shot
    # migrate service exiting, and workers exit without a ROOST_TOKEN; the api's health
    # is awaited below instead.
    return ["up --build -d"]


@pytest.fixture(scope="session")
def roost_endpoint(request: pytest.FixtureRequest) -> str:
    """The api URL of the compose stack. pytest-docker's fixtures are requested only
    once `docker info` has succeeded: without an engine they would fail, not skip."""
    if not _docker_engine_reachable():
        pytest.skip(NO_ENGINE)
    busy = _host_ports_in_use()
    if busy:
        pytest.skip(
            f"Docker engine found, but host port(s) {busy} that docker-compose.yml "
            "publishes are in use here (stop `just up`'s servers to run it)"
        )
    services = request.getfixturevalue("docker_services")
    docker_ip = request.getfixturevalue("docker_ip")
    url = f"http://{docker_ip}:{services.port_for('api', API_PORT)}"
    services.wait_until_responsive(check=lambda: _healthy(url), timeout=180.0, pause=1.0)
    return url


@pytest.mark.timeout(1200)  # the first run builds the image
def test_the_compose_api_answers_health_ok(roost_endpoint: str) -> None:
    resp = httpx.get(f"{roost_endpoint}/health", timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
