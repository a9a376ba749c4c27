"""Starts a real Roost stack for tests and benchmarks: a fresh PostgreSQL database and
RabbitMQ vhost, the api and scheduler as processes, workers on demand. Everything it
starts it stops by PID; everything it creates it drops."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
PG_ADMIN_URL = os.environ.get("ROOST_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_HOST = os.environ.get("ROOST_TEST_AMQP_HOST", "127.0.0.1:5672")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rabbitmqctl(*args: str, node: str | None = None) -> None:
    target = ["-n", node] if node else []
    subprocess.run(
        ["rabbitmqctl", "-q", *target, *args], check=True, capture_output=True, timeout=60
    )


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    # How it was started (``roost`` CLI arguments, extra variables), to start it again.
    args: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                # The whole process group this harness started (a worker's Dramatiq
                # children too), so nothing it started outlives the test.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class Stack:
    """A running Roost: database, vhost, api, scheduler, and any workers started."""

    workdir: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    processes: list[Process] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    api_port: int = 0
    gateway_port: int = 0
    scheduler_metrics_port: int = 0
    use_vhost: bool = True
    # Another PostgreSQL / RabbitMQ (fault tests run private servers): the admin URL the
    # test database is created from, the AMQP host:port, and the node `rabbitmqctl -n`
    # manages vhosts on (None: the default node).
    pg_admin_url: str = PG_ADMIN_URL
    amqp_host: str = AMQP_HOST
    rabbitmq_node: str | None = None
    # Variables every process of this stack gets on top of this process's environment
    # (OTEL_* for a traced stack, say), without touching os.environ.
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def database(self) -> str:
        return f"roost_test_{self.tag}"

    @property
    def database_url(self) -> str:
        return self.env["ROOST_DATABASE_URL"]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def token(self) -> str:
        return self.env["ROOST_TOKEN"]

    def start(self, schedulers: int = 1) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        base = self.pg_admin_url.rsplit("/", 1)[0]
        vhost = "/"
        if self.use_vhost and shutil.which("rabbitmqctl"):
            try:
                rabbitmqctl("add_vhost", f"roost_test_{self.tag}", node=self.rabbitmq_node)
                vhost = f"roost_test_{self.tag}"
                rabbitmqctl(
                    "set_permissions",
                    "-p",
                    vhost,
                    "guest",
                    ".*",
                    ".*",
                    ".*",
                    node=self.rabbitmq_node,
                )
            except subprocess.CalledProcessError:
                # Not allowed to manage vhosts (not root): the fresh namespace alone
                # keeps this run's queues apart.
                if vhost != "/":
                    with contextlib.suppress(subprocess.SubprocessError, OSError):
                        rabbitmqctl("delete_vhost", vhost, node=self.rabbitmq_node)
                vhost = "/"
        self.vhost = vhost
        self.api_port = free_port()
        self.gateway_port = free_port()
        self.scheduler_metrics_port = free_port()
        self.env = {
            **os.environ,
            "ROOST_DATABASE_URL": f"{base}/{self.database}",
            "ROOST_BROKER_URL": f"amqp://guest:guest@{self.amqp_host}/{quote(vhost, safe='')}",
            "ROOST_NAMESPACE": f"t{self.tag}",
            "ROOST_API_PORT": str(self.api_port),
            "ROOST_API_URL": f"http://127.0.0.1:{self.api_port}",
            "ROOST_GATEWAY_PORT": str(self.gateway_port),
            "ROOST_GATEWAY_URL": f"http://127.0.0.1:{self.gateway_port}",
            "ROOST_SCHEDULER_METRICS_PORT": str(self.scheduler_metrics_port),
            "ROOST_RATELIMITER_METRICS_PORT": str(free_port()),
            "ROOST_TLS_STRATEGY": "none",
            "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)]),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        self.roost("migrate")
        self.env["ROOST_TOKEN"] = self.roost("token", "create", "--name", "tests").strip()
        self.spawn("api", "api")
        for i in range(schedulers):
            self.spawn(f"scheduler-{i}", "scheduler")
        self.spawn("gateway", "gateway")
        self.spawn("ratelimiter", "ratelimiter")
        self.wait_ready()
        return self

    def roost(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """Run the real CLI and return its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "roost.cli", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"roost {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done.stdout

    def spawn(
        self,
        name: str,
        *args: str,
        extra_env: dict[str, str] | None = None,
        log_name: str | None = None,
    ) -> Process:
        """Start ``roost ARGS`` as ``name``, its output in ``<log_name or name>.log``."""
        log = self.workdir / f"{log_name or name}.log"
        popen = subprocess.Popen(
            [sys.executable, "-m", "roost.cli", *args],
            env={**self.env, **(extra_env or {})},
            cwd=REPO,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Process(name, popen, log, args, dict(extra_env or {}))
        self.processes.append(proc)
        return proc

    def restart(self, proc: Process) -> Process:
        """Stop ``proc`` and start it again as it was started (same ports: a redeploy, or
        a crash and its supervisor's restart); then wait until the api and gateway
        answer. Returns the new process."""
        self.stop_one(proc)
        again = self.spawn(
            proc.name, *proc.args, extra_env=proc.extra_env, log_name=f"{proc.name}.restarted"
        )
        self.wait_ready(watch=[again])
        return again

    def stop_one(self, proc: Process) -> None:
        """Stop a process a test started for itself, and forget it."""
        proc.stop()
        if proc in self.processes:
            self.processes.remove(proc)

    def process(self, name: str) -> Process:
        """The running process this stack started as ``name``."""
        return next(p for p in self.processes if p.name == name)

    def start_worker(
        self,
        target: str,
        processes: int = 1,
        threads: int = 4,
        name: str | None = None,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> Process:
        """Start ``roost worker target`` and wait until its processes consume."""
        proc = self.spawn(
            name or f"worker-{len(self.processes)}",
            "worker",
            target,
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            *(extra_args or []),
            extra_env=extra_env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = proc.log.read_text(errors="replace") if proc.log.exists() else ""
            if text.count("Worker process is ready for action") >= processes:
                return proc
            if proc.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"worker {target} did not start:\n{proc.tail()}")

    def api_get(self, path: str, **params: object) -> Any:
        """GET ``path`` from the api with this stack's token; the JSON body of a 200."""
        resp = httpx.get(
            f"{self.api_url}{path}",
            params=params,  # type: ignore[arg-type]
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert resp.status_code == 200, f"GET {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def start_dashboard(
        self,
        timeout: float = 30.0,
        extra_env: dict[str, str] | None = None,
        name: str = "dashboard",
    ) -> tuple[str, Process]:
        """Start ``roost dashboard`` on a free port; its URL once it answers."""
        port = free_port()
        proc = self.spawn(
            name, "dashboard", extra_env={"ROOST_DASHBOARD_PORT": str(port), **(extra_env or {})}
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return url, proc
            except httpx.HTTPError:
                pass
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start:\n{proc.tail()}")
            time.sleep(0.2)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def wait_ready(self, timeout: float = 30.0, watch: list[Process] | None = None) -> None:
        """Wait until the api and gateway answer /ready; fail early if one of ``watch``
        (by default every process of the stack) has exited."""
        deadline = time.monotonic() + timeout
        last = ""
        for url in (self.api_url, self.gateway_url):
            while time.monotonic() < deadline:
                for p in self.processes if watch is None else watch:
                    if p.popen.poll() is not None:
                        raise RuntimeError(f"{p.name} exited early:\n{p.tail()}")
                try:
                    r = httpx.get(f"{url}/ready", timeout=2)
                    if r.status_code == 200:
                        break
                    last = r.text
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.1)
            else:
                raise RuntimeError(f"{url} not ready: {last}")

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()
        self.processes.clear()
        try:
            with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except psycopg.Error:
            pass
        if getattr(self, "vhost", "/") != "/":
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                rabbitmqctl("delete_vhost", self.vhost, node=self.rabbitmq_node)

    def sql(self, query: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()
