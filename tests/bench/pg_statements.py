"""Where PostgreSQL spends a benchmark phase, statement by statement (``bench.py
--statements``).

The machine's shared PostgreSQL does not load ``pg_stat_statements`` (and must not be
reconfigured), so :class:`PrivatePostgres` starts a server of its own: ``initdb`` and
``pg_ctl`` as the ``postgres`` user in a temporary directory, on a free port, with the
extension preloaded and the shared server's durability and memory settings (read with
``SHOW``) so that the numbers compare. It is stopped by its postmaster (``pg_ctl stop``)
and its directory removed, even on an error or Ctrl-C.

:class:`StatementProbe` resets the statistics when a phase starts and reads them when it
ends. The bench's own connections (its polling, this probe) log in as the ``bench`` role
and are left out, so what remains is what Roost's processes asked of PostgreSQL. Each
statement is named after the block of Roost's ``.sql`` files it comes from, matched by
its text with whitespace, parameters and literals normalised away.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

from harness import REPO, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
# The shared server's settings the private one copies: durability, memory, WAL, vacuum.
COPIED_SETTINGS = (
    *("fsync", "synchronous_commit", "full_page_writes", "wal_level", "autovacuum"),
    *("shared_buffers", "work_mem", "max_connections", "max_wal_size", "min_wal_size"),
    *("checkpoint_timeout", "jit"),
)
CLIENT_ROLE = "bench"  # the bench's own connections, left out of the tables
TOP = 12
TEXT_WIDTH = 90
SQL_FOLDERS = ("shared/core/src/roost_core/sql/queries", "services/*/src/*/sql")
TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.I)


class PrivatePostgres:
    """A PostgreSQL 15 server of its own with pg_stat_statements loaded; a context
    manager that starts it and always stops it."""

    def __init__(self, like_url: str) -> None:
        self.like_url = like_url
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="roost-bench-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.settings: dict[str, str] = {}

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            # Its own session: the terminal's Ctrl-C reaches the bench, which stops it.
            start_new_session=True,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {args[-1]} failed:\n{done.stdout}{done.stderr}{log}")

    def start(self) -> PrivatePostgres:
        with psycopg.connect(self.like_url, autocommit=True) as conn:
            for name in COPIED_SETTINGS:
                row = conn.execute(f"SHOW {name}").fetchone()
                if row is not None:
                    self.settings[name] = str(row[0])
        user = pwd.getpwnam("postgres")
        os.chmod(self.root, 0o755)
        os.chown(self.root, user.pw_uid, user.pw_gid)
        atexit.register(self.stop)
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        options = [
            f"-p {self.port}",
            f"-k {self.root}",
            "-c listen_addresses=127.0.0.1",
            "-c shared_preload_libraries=pg_stat_statements",
            "-c pg_stat_statements.track=all",
            "-c pg_stat_statements.max=10000",
            *(f"-c {name}={value}" for name, value in self.settings.items()),
        ]
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                 "start", "-o", " ".join(options))  # fmt: skip
        return self

    def _postmaster(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop the server (fast shutdown; SIGKILL to its postmaster if that fails) and
        remove its directory. Safe to call twice."""
        if self._postmaster() is not None:
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            pid = self._postmaster()
            if pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def normalise(sql: str) -> str:
    """A statement's text with whatever pg_stat_statements or a driver changes made
    equal: parameters (``%(x)s``, ``%s``, ``$1``) and literals become ``?``; case and
    whitespace do not count."""
    sql = re.sub(r"--[^\n]*", " ", sql)
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"%\([a-z_0-9]+\)[sb]|%s|\$\d+", "?", sql)
    sql = re.sub(r"(?<![\w.])\d+(?:\.\d+)?\b|\b(?:true|false|null)\b", "?", sql, flags=re.I)
    return re.sub(r"\s+", "", sql).lower()


def roost_statement_names() -> dict[str, str]:
    """Normalised text -> ``file:name`` for every named block of Roost's ``.sql`` files."""
    from roost_core.queries import Queries

    names: dict[str, str] = {}
    for pattern in SQL_FOLDERS:
        for folder in sorted(REPO.glob(pattern)):
            files = {str(f.relative_to(REPO)): f.read_text() for f in sorted(folder.glob("*.sql"))}
            queries = Queries(files)
            for name in sorted(queries.names - queries.included):
                source = Path(queries.source(name)).stem
                names.setdefault(normalise(queries[name]), f"{source}:{name}")
    return names


@dataclass
class Statement:
    query: str
    name: str
    toplevel: bool
    calls: int
    total_ms: float
    rows: int


@dataclass
class Phase:
    label: str
    runs: int
    statements: list[Statement]
    client_calls: int  # statements of the bench's own connections, left out

    @property
    def total_ms(self) -> float:
        return sum(s.total_ms for s in self.statements if s.toplevel)

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.statements if s.toplevel)

    @property
    def transaction_calls(self) -> int:
        """Calls of BEGIN, COMMIT and the like (in :attr:`calls` too)."""
        return sum(s.calls for s in self.statements if TRANSACTION_CONTROL.match(s.query))

    @property
    def unnamed(self) -> list[Statement]:
        """Top-level statements matching no named block, transaction control aside."""
        return [
            s
            for s in self.statements
            if s.toplevel and not s.name and not TRANSACTION_CONTROL.match(s.query)
        ]

    @property
    def nested_calls(self) -> int:
        """Calls made inside other statements (foreign-key checks, say): their time is
        in the time of the statement that made them."""
        return sum(s.calls for s in self.statements if not s.toplevel)


class StatementProbe:
    """Resets pg_stat_statements when a phase begins and reads it when it ends."""

    def __init__(self, server: PrivatePostgres, database_url: str) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute(f"CREATE ROLE {CLIENT_ROLE} LOGIN IN ROLE pg_read_all_data")
            conn.execute(f"GRANT pg_read_all_stats TO {CLIENT_ROLE}")
            conn.execute(f"GRANT EXECUTE ON FUNCTION pg_stat_statements_reset TO {CLIENT_ROLE}")
        database = database_url.rsplit("/", 1)[1]
        #: For the bench's own connections: what they ask is left out of the tables.
        self.client_url = f"postgresql://{CLIENT_ROLE}@127.0.0.1:{server.port}/{database}"
        self.names = roost_statement_names()
        self.phases: list[Phase] = []
        self._conn = psycopg.connect(self.client_url, autocommit=True)

    def begin(self) -> None:
        self._conn.execute("SELECT pg_stat_statements_reset()")

    def end(self, label: str, runs: int) -> Phase:
        rows = self._conn.execute(
            "SELECT r.rolname = %s, s.query, s.toplevel, s.calls, s.total_exec_time, s.rows"
            " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
            " WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY s.total_exec_time DESC",
            (CLIENT_ROLE,),
        ).fetchall()
        statements = [
            Statement(query, self.names.get(normalise(query), ""), top, calls, ms, n)
            for ours, query, top, calls, ms, n in rows
            if not ours
        ]
        client = sum(int(calls) for ours, _, _, calls, _, _ in rows if ours)
        phase = Phase(label, runs, statements, client)
        self.phases.append(phase)
        return phase

    def close(self) -> None:
        self._conn.close()


def one_line(sql: str, width: int = TEXT_WIDTH) -> str:
    text = re.sub(r"\s+", " ", sql).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def report(console: Console, phases: list[Phase], settings: dict[str, str]) -> None:
    """A table per phase: the top statements by total execution time."""
    for phase in phases:
        runs = max(1, phase.runs)
        total = phase.total_ms or 1.0
        named = sum(s.total_ms for s in phase.statements if s.toplevel and s.name)
        unnamed = phase.unnamed
        table = Table(
            title=f"PostgreSQL during {phase.label}: top {TOP} statements by execution time",
            caption=(
                f"{phase.runs} runs; {phase.calls / runs:.1f} statements per run (of which "
                f"{phase.transaction_calls / runs:.1f} BEGIN/COMMIT/...), "
                f"{phase.total_ms / runs:.2f} ms of PostgreSQL execution per run; "
                f"{len(phase.statements)} distinct statements, {100 * named / total:.0f}% of "
                f"the time in named ones; unnamed: {len(unnamed)} "
                f"({sum(s.calls for s in unnamed) / runs:.2f} calls/run); nested in others "
                f"(foreign-key checks...; not in the totals): {phase.nested_calls / runs:.1f} "
                f"calls/run; the bench's own {phase.client_calls} statements left out. "
                "Execution time only (pg_stat_statements total_exec_time): no planning, "
                "network or client."
            ),
            caption_justify="left",
        )
        rows = [
            [
                s.name or ("-" if s.toplevel else "(nested)"),
                f"{s.calls / runs:.2f}",
                f"{s.total_ms / max(1, s.calls):.3f}",
                f"{s.total_ms / runs:.3f}",
                f"{s.rows / max(1, s.calls):.1f}",
                f"{100 * s.total_ms / total:.1f}%",
                s.query,
            ]
            for s in phase.statements[:TOP]
        ]
        headers = ("name", "calls/run", "mean ms", "ms/run", "rows/call", "share")
        widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
        for i, (header, width) in enumerate(zip(headers, widths, strict=True)):
            table.add_column(header, justify="right" if i else "left", min_width=width)
        table.add_column("statement")
        # The statement's text on one line, cut to what the other columns leave.
        left = console.width - sum(widths) - 3 * len(widths) - 4
        for row in rows:
            table.add_row(*row[:-1], one_line(row[-1], max(20, min(TEXT_WIDTH, left))))
        console.print(table)
    if phases:
        console.print(
            "[dim]private PostgreSQL with the shared server's "
            + ", ".join(f"{k}={v}" for k, v in settings.items())
        )
