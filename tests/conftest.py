"""Shared fixtures. Integration and end-to-end tests need the real PostgreSQL and
RabbitMQ: without them they fail under CI=true, and are skipped (loudly) elsewhere."""

from __future__ import annotations

import importlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from harness import Stack

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_servers() -> None:
    missing = [
        name
        for name, port in (("PostgreSQL", 5432), ("RabbitMQ", 5672))
        if not _reachable("127.0.0.1", port)
    ]
    if missing:
        message = f"{' and '.join(missing)} not reachable on 127.0.0.1"
        if IN_CI:
            pytest.fail(message + " (CI=true: start them, see README)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A running api and scheduler on a fresh database and vhost, for the session."""
    require_servers()
    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def flows(stack: Stack) -> ModuleType:
    """The test workflows module, bound to the session's stack through ROOST_* env."""
    for key in (
        "ROOST_API_URL",
        "ROOST_GATEWAY_URL",
        "ROOST_TOKEN",
        "ROOST_BROKER_URL",
        "ROOST_NAMESPACE",
        "ROOST_TLS_STRATEGY",
    ):
        os.environ[key] = stack.env[key]
    sys.modules.pop("roost_testapps.flows", None)
    return importlib.import_module("roost_testapps.flows")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
