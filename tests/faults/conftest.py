"""Fixtures of the fault-injection suite: a private PostgreSQL and a private RabbitMQ node
(which tests stop, crash and restart), a Roost stack on them (api, scheduler and a
`loader` worker as processes), and the test workflows bound to that stack.

The machine's shared servers are never touched. Every process and server started here
is stopped by its own PID (or node name) at the end, even when a test fails."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from faults.servers import PG_BIN, Cluster

CLIENT_ENV = ("ROOST_API_URL", "ROOST_TOKEN", "ROOST_BROKER_URL", "ROOST_NAMESPACE")


def _require_tools() -> None:
    missing = [
        what
        for what, ok in (
            ("PostgreSQL 15 binaries", (PG_BIN / "initdb").exists()),
            ("rabbitmq-server", shutil.which("rabbitmq-server") is not None),
            ("runuser", shutil.which("runuser") is not None),
            ("root", os.geteuid() == 0),
        )
        if not ok
    ]
    if missing:
        message = f"fault tests need {', '.join(missing)}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Private servers and a Roost stack on them, for this module; all torn down after."""
    _require_tools()
    c = Cluster(tmp_path_factory.mktemp("faults"))
    try:
        c.start()
        print(f"\n[faults] each process's log is under {c.s.workdir}")
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def flows(cluster: Cluster) -> Iterator[ModuleType]:
    """The test workflows, bound through ROOST_* env to the fault stack (restored after)."""
    saved = {k: os.environ.get(k) for k in (*CLIENT_ENV, "ROOST_TLS_STRATEGY")}
    for key in saved:
        os.environ[key] = cluster.s.env[key]
    sys.modules.pop("roost_testapps.flows", None)
    module = importlib.import_module("roost_testapps.flows")
    try:
        yield module
    finally:
        with contextlib.suppress(Exception):
            module.roost.close()
        sys.modules.pop("roost_testapps.flows", None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def healthy(cluster: Cluster) -> Cluster:
    """The cluster, mended after whatever the previous test broke."""
    cluster.ensure_healthy()
    return cluster


@pytest.fixture(scope="session")
def recovery_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where measured recovery times are appended (in pytest's temporary directory)."""
    return tmp_path_factory.getbasetemp() / "last_recovery.txt"
