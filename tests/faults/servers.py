"""Private PostgreSQL and RabbitMQ servers that fault tests may stop, crash and restart,
and :class:`Cluster`, a Roost stack on them with ways to break and mend each part.

The machine's shared servers (PostgreSQL on 5432, RabbitMQ on 5672) are never touched:
each server here lives in its own temporary directory, on free ports, and is stopped
(by its own PID or node name) and removed at the end, even when a test fails; an
``atexit`` hook covers an interpreter that exits without running fixture teardown.
Processes are only ever signalled by the PIDs this module started or found as their
children. Recipes: ``../shared/RECIPES.md``."""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from harness import Process, Stack

PG_BIN = Path("/usr/lib/postgresql/15/bin")

WORKER_TARGET = "roost_testapps.flows:loader"
WORKER_PROCESSES = 2
WORKER_THREADS = 8

# Recovery as fast as the settings allow. The scheduler republishes stranded outbox rows
# after 2 s instead of 5; Dramatiq restarts a consumer 1 s after it lost the broker
# instead of 3.
SCHEDULER_ENV = {
    "ROOST_SWEEP_GRACE_SECONDS": "2",
    "ROOST_SWEEP_INTERVAL_SECONDS": "0.5",
}
# Worker liveness, as fast as its settings allow: workers beat every second and their
# consumers use a 2 s AMQP heartbeat (RabbitMQ drops a frozen worker's connection, and
# requeues its messages, after about two missed beats); the scheduler gives up on a
# worker not heard from for 5 s.
HEARTBEAT_WORKER_ENV = {
    "ROOST_HEARTBEAT_INTERVAL_SECONDS": "1",
    "ROOST_AMQP_HEARTBEAT_SECONDS": "2",
}
HEARTBEAT_SCHEDULER_ENV = {"ROOST_WORKER_HEARTBEAT_TIMEOUT_SECONDS": "5"}
WORKER_ENV = {"dramatiq_restart_delay": "1000"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class PrivatePostgres:
    """A PostgreSQL 15 cluster of its own: ``initdb`` and ``pg_ctl`` as ``postgres``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="roost-fault-pg-"))
        os.chmod(self.root, 0o755)
        _chown_tree(self.root, "postgres")
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._initialized = False
        atexit.register(self.cleanup)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )

    def start(self) -> None:
        if not self._initialized:
            done = self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
            self._initialized = True
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c autovacuum=off -c max_connections=200"
        )
        done = self._pg(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            "start", "-o", options,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}\n{done.stderr}\n{self.tail()}")

    def stop(self, mode: str = "fast") -> None:
        """``mode="immediate"`` is a crash: no checkpoint, recovery from WAL at start."""
        if not self.running:
            return
        done = self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", timeout=60)
        if done.returncode != 0 and self.running:
            raise RuntimeError(f"pg_ctl stop failed:\n{done.stdout}\n{done.stderr}")

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()

    @property
    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def running(self) -> bool:
        pid = self.postmaster_pid
        return pid is not None and _pid_alive(pid)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        pid = self.postmaster_pid
        if pid is not None and _pid_alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRabbit:
    """A RabbitMQ node of its own (node name, AMQP and distribution ports, directories
    owned by ``rabbitmq``, no plugins); epmd is shared, which is fine."""

    def __init__(self) -> None:
        self.node = f"roostfault{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        while self.dist_port == self.port:
            self.dist_port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="roost-fault-rabbit-"))
        os.chmod(self.root, 0o755)
        (self.root / "plugins").write_text("[].\n")
        _chown_tree(self.root, "rabbitmq")
        self.pid_file = self.root / "pid"
        self.out = self.root / "out"
        self._popen: subprocess.Popen[bytes] | None = None
        self._started: list[subprocess.Popen[bytes]] = []
        atexit.register(self.cleanup)

    @property
    def amqp_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.root / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.root / "log"),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "plugins"),
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq"),
        )
        return env

    def ctl(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        done = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.node, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def start(self, timeout: float = 90) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        out = self.out.open("ab")
        self._popen = subprocess.Popen(
            ["rabbitmq-server"],
            env=self._env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        self._started.append(self._popen)
        deadline = time.monotonic() + timeout
        while not self.pid_file.exists():
            if self._popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rabbitmq-server did not start:\n{self.tail()}")
            time.sleep(0.1)
        # `wait` returns once the node runs the app (and so accepts connections).
        self.ctl("wait", "--timeout", str(int(timeout)), str(self.pid_file), timeout=timeout + 10)
        while not _port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ node {self.node} is not listening:\n{self.tail()}")
            time.sleep(0.1)

    @property
    def beam_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def running(self) -> bool:
        pid = self.beam_pid
        return pid is not None and _pid_alive(pid)

    def stop(self, timeout: float = 60, *, via: str = "rabbitmqctl") -> None:
        """A clean stop; returns once the node has exited. ``via="rabbitmqctl"`` runs
        ``rabbitmqctl stop``; ``via="sigterm"`` sends SIGTERM to beam.smp, which RabbitMQ
        handles as the same orderly shutdown (connections closed with CONNECTION_FORCED,
        queues and message stores stopped) but without the CLI's own start-up time
        (about 0.5 s), so that a test knows when the broker went away."""
        if not self.running:
            self._reap()
            return
        if via == "sigterm":
            pid = self.beam_pid
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        else:
            self.ctl("stop", str(self.pid_file), timeout=timeout, check=False)
        self._wait_exit(timeout)

    def kill(self) -> None:
        """A crash: SIGKILL of the node's beam.smp."""
        pid = self.beam_pid
        if pid is not None and _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._wait_exit(30)

    def restart(self, *, via: str = "rabbitmqctl") -> None:
        self.stop(via=via)
        self.start()

    def _wait_exit(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pid = self.beam_pid
        while pid is not None and _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._reap(deadline - time.monotonic())

    def _reap(self, timeout: float = 5.0) -> None:
        for popen in self._started:
            if popen.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(max(timeout, 0.1))
        # Port released (the next start binds it again).
        deadline = time.monotonic() + 10
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        parts = []
        for path in [self.out, *sorted((self.root / "log").glob("*.log"))]:
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"== {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def _node_pids(self) -> list[int]:
        """PIDs of processes that belong to this node: its unique name on their command
        line (beam.smp, the start scripts, erl_child_setup's parent)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                environ = b""
                with contextlib.suppress(OSError):
                    environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            marker = self.node.split("@")[0].encode()
            if marker in cmdline or marker in environ:
                found.append(int(entry.name))
        return [p for p in found if p != os.getpid()]

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(timeout=30)
        with contextlib.suppress(Exception):
            self.kill()
        # Anything of this node still alive (a start that never finished booting).
        for pid in self._node_pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for popen in self._started:
            if popen.poll() is None:
                with contextlib.suppress(OSError):
                    popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def children(pid: int) -> list[int]:
    """Live direct children of ``pid`` (Dramatiq's worker processes, for a worker)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError):
            found.extend(int(c) for c in (task / "children").read_text().split())
    return [c for c in found if process_state(c) not in (None, "Z")]


def process_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (R, S, T, Z...), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


class Cluster:
    """The stack under test and the servers under it, with ways to break and mend them.

    The api, scheduler and worker are restarted the way an operator would: a new process
    with the same arguments (the api on the same port)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pg = PrivatePostgres()
        self.rabbit = PrivateRabbit()
        self.stack: Stack | None = None
        self.api: Process | None = None
        self.gateway: Process | None = None
        self.ratelimiter: Process | None = None
        self.scheduler: Process | None = None
        self.worker: Process | None = None
        self._count = 0

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.pg.start()
        self.rabbit.start()
        self.stack = Stack(
            self.workdir / "stack",
            pg_admin_url=self.pg.admin_url,
            amqp_host=self.rabbit.amqp_host,
            rabbitmq_node=self.rabbit.node,
        )
        # The harness starts the api; the scheduler is started here, with its settings.
        self.stack.start(schedulers=0)
        self.api, self.gateway, self.ratelimiter = self.stack.processes
        self.start_scheduler()
        self.start_worker()

    def close(self) -> None:
        try:
            if self.stack is not None:
                kids = []
                for proc in self.stack.processes:
                    self.cont(proc.pid)  # a stopped process cannot act on SIGTERM
                    for child in children(proc.pid):
                        self.cont(child)
                        kids.append(child)
                if not self.pg.running:
                    with contextlib.suppress(Exception):
                        self.pg.start()
                self.stack.stop()
                # A worker's Dramatiq processes outlive a parent that had to be killed.
                for kid in kids:
                    if process_state(kid) not in (None, "Z"):
                        self.kill(kid)
        finally:
            try:
                self.rabbit.cleanup()
            finally:
                self.pg.cleanup()

    @property
    def s(self) -> Stack:
        assert self.stack is not None
        return self.stack

    def _name(self, what: str) -> str:
        self._count += 1
        return f"{what}-{self._count}"

    def start_api(self) -> Process:
        self.api = self.s.spawn(self._name("api"), "api")
        self.wait_api()
        return self.api

    def start_scheduler(self) -> Process:
        self.scheduler = self.s.spawn(
            self._name("scheduler"),
            "scheduler",
            extra_env={**SCHEDULER_ENV, **HEARTBEAT_SCHEDULER_ENV},
        )
        self.wait_consumers(self.scheduler_queue, 1, self.scheduler)
        return self.scheduler

    def start_worker(self) -> Process:
        """``roost worker`` with 2 processes x 8 threads; returns once both consume."""
        proc = self.s.spawn(
            self._name("loader"),
            "worker",
            WORKER_TARGET,
            "--processes",
            str(WORKER_PROCESSES),
            "--threads",
            str(WORKER_THREADS),
            extra_env={**WORKER_ENV, **HEARTBEAT_WORKER_ENV},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = proc.log.read_text(errors="replace") if proc.log.exists() else ""
            if text.count("Worker process is ready for action") >= WORKER_PROCESSES:
                break
            if proc.popen.poll() is not None:
                raise RuntimeError(f"worker exited at start:\n{proc.tail()}")
            time.sleep(0.1)
        else:
            raise RuntimeError(f"worker did not start:\n{proc.tail()}")
        self.worker = proc
        self.wait_consumers(self.task_queue, WORKER_PROCESSES, proc)
        return proc

    def wait_api(self, timeout: float = 30) -> None:
        assert self.api is not None
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.api.popen.poll() is not None:
                raise RuntimeError(f"{self.api.name} exited:\n{self.api.tail()}")
            try:
                r = httpx.get(f"{self.s.api_url}/ready", timeout=2)
                if r.status_code == 200:
                    return
                last = r.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise RuntimeError(f"{self.api.name} not ready: {last}\n{self.api.tail()}")

    # -- the broker's view ---------------------------------------------------------------

    @property
    def scheduler_queue(self) -> str:
        return f"{self.s.env['ROOST_NAMESPACE']}.scheduler"

    @property
    def task_queue(self) -> str:
        return f"{self.s.env['ROOST_NAMESPACE']}.work.t-load"

    def queues(self) -> dict[str, tuple[int, int, int]]:
        """name -> (ready, unacknowledged, consumers) on the stack's vhost."""
        out = self.rabbit.ctl(
            "list_queues", "-p", self.s.vhost, "--no-table-headers",
            "name", "messages_ready", "messages_unacknowledged", "consumers",
            timeout=30,
        )  # fmt: skip
        found = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[1].isdigit():
                found[parts[0]] = (int(parts[1]), int(parts[2]), int(parts[3]))
        return found

    def consumers(self, queue: str) -> int:
        try:
            return self.queues().get(queue, (0, 0, 0))[2]
        except (RuntimeError, subprocess.SubprocessError):
            return -1

    def wait_consumers(self, queue: str, n: int, proc: Process, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.consumers(queue) < n:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{queue} has fewer than {n} consumers:\n{proc.tail()}")
            time.sleep(0.2)

    # -- faults ---------------------------------------------------------------------------

    @staticmethod
    def kill(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    @staticmethod
    def cont(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)

    def worker_children(self) -> list[int]:
        assert self.worker is not None
        return children(self.worker.pid)

    def forget(self, proc: Process | None) -> None:
        """Reap a process the test killed and drop it from the stack's list."""
        if proc is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(15)
        if proc.popen.poll() is not None and proc in self.s.processes:
            self.s.processes.remove(proc)

    # -- health ---------------------------------------------------------------------------

    def ensure_healthy(self) -> None:
        """Bring back whatever an earlier test left broken: servers down, processes dead
        or stopped, a process alive but no longer consuming."""
        if not self.pg.running:
            self.pg.start()
        if not self.rabbit.running:
            self.rabbit.start()
        for proc in list(self.s.processes):
            self.cont(proc.pid)
            for child in children(proc.pid):
                self.cont(child)
        queues = self.queues()
        api_ok = self.api is not None and self.api.popen.poll() is None
        if api_ok:
            try:
                self.wait_api(timeout=10)
            except RuntimeError:
                api_ok = False
        if not api_ok:
            self.retire(self.api)
            self.start_api()
        sched_ok = self.scheduler is not None and self.scheduler.popen.poll() is None
        if not sched_ok or queues.get(self.scheduler_queue, (0, 0, 0))[2] < 1:
            self.retire(self.scheduler)
            self.start_scheduler()
        worker_ok = (
            self.worker is not None
            and self.worker.popen.poll() is None
            and len(self.worker_children()) == WORKER_PROCESSES
            and queues.get(self.task_queue, (0, 0, 0))[2] >= WORKER_PROCESSES
        )
        if not worker_ok:
            self.retire(self.worker)
            self.start_worker()
        self.wait_quiet()

    def wait_quiet(self, timeout: float = 30) -> bool:
        """Let runs an earlier test left unfinished end, and the outbox drain, so that a
        test starts on a quiet system. False (not an error) if they do not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = self.try_sql(
                "SELECT (SELECT count(*) FROM runs WHERE status NOT IN"
                " ('SUCCEEDED', 'FAILED', 'CANCELLED')) + (SELECT count(*) FROM outbox)"
            )
            if busy is not None and busy[0][0] == 0:
                return True
            time.sleep(0.2)
        print(f"[faults] not quiet after {timeout:.0f} s:\n{self.diagnosis()}")
        return False

    def retire(self, proc: Process | None) -> None:
        """Stop a process that is unhealthy (and its Dramatiq children), by PID."""
        if proc is None:
            return
        kids = children(proc.pid)
        proc.stop(timeout=10)
        for kid in kids:
            if process_state(kid) not in (None, "Z"):
                self.kill(kid)
        self.forget(proc)

    # -- the database's view -------------------------------------------------------------

    def sql(self, query: str, *params: object) -> list[tuple[object, ...]]:
        return self.s.sql(query, *params)

    def try_sql(self, query: str, *params: object) -> list[tuple[object, ...]] | None:
        """``sql`` that returns None while PostgreSQL is down."""
        try:
            return self.s.sql(query, *params)
        except psycopg.OperationalError:
            return None

    def diagnosis(self, ids: list[str] | None = None) -> str:
        """What a failed assertion should show: DB state, queues, processes, log tails."""
        lines = []
        scope = " WHERE run_id = ANY(%s::uuid[])" if ids else ""
        params = (ids,) if ids else ()
        for title, query in (
            ("runs by status", "SELECT status, count(*) FROM runs{w} GROUP BY 1 ORDER BY 1"),
            (
                "task runs by task, status, attempt",
                "SELECT task_name, status, attempt, count(*) FROM task_runs{w}"
                " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            ),
            (
                "task attempts by status",
                "SELECT a.status, a.error->>'type', count(*) FROM task_attempts a"
                " JOIN task_runs t ON t.id = a.task_run_id{w2} GROUP BY 1, 2",
            ),
            ("outbox rows", "SELECT count(*), min(created_at), max(created_at) FROM outbox"),
        ):
            where = scope.replace("run_id", "id") if title == "runs by status" else scope
            q = query.format(w=where, w2=scope.replace("run_id", "t.run_id"))
            uses = params if "{w" in query else ()
            try:
                rows = self.sql(q, *uses)
            except Exception as exc:
                rows = [(f"unavailable: {exc!r}",)]
            lines.append(f"{title}: {rows}")
        try:
            lines.append(f"queues (ready, unacked, consumers): {self.queues()}")
        except Exception as exc:
            lines.append(f"queues unavailable: {exc!r}")
        lines.append(f"postgres running: {self.pg.running}; rabbit running: {self.rabbit.running}")
        for proc in self.s.processes:
            state = "alive" if proc.popen.poll() is None else f"exited {proc.popen.returncode}"
            kids = children(proc.pid)
            kid_states = {k: process_state(k) for k in kids}
            lines.append(f"--- {proc.name} pid {proc.pid} {state} children {kid_states}")
            lines.append(proc.tail(25))
        return "\n".join(lines)
