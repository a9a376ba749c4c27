"""The schedules benchmark (issue #19, part of ``just bench``).

- S1  idle: the scheduler's CPU with no crons, then with 10,000 crons none of which is
      due (they fire once a year): what registered crons cost between their fires.
- S2  fire lag: the same 10,000 crons, each firing once a minute at its own second
      (``S * * * * *``, S = i mod 60: ~167 fires every second), for ``--seconds``. The lag
      of each run is measured from outside: this process polls the runs table every
      50 ms and notes when each run first becomes visible (committed), minus the fire
      time its metadata carries (``roost.fire_at``). p50, p99, max; and the
      scheduler's CPU meanwhile.

The crons are written with SQL (their next fire time computed by roost_core.crons, as
the api does): making 10,000 through HTTP would measure the api, not the firing.
No worker serves the workflow: a fired run stays QUEUED (its first task waits in
RabbitMQ), which is all this measures.

    .venv/bin/python tests/bench/schedules_bench.py [--crons N] [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(TESTS), str(REPO)]

import httpx  # noqa: E402
import psycopg  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.stats import percentile  # noqa: E402
from harness import Stack  # noqa: E402
from roost_core import crons  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 120)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_percent(pid: int, seconds: float) -> float:
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - before) / (time.monotonic() - started)


def write_crons(conn: psycopg.Connection, workflow_id: str, tenant_id: str, n: int) -> None:
    """``n`` crons that fire once a year, at 03:00 on 1 January."""
    now = datetime.now(UTC)
    following = crons.next_fire("0 3 1 1 *", "UTC", now)
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY crons (id, tenant_id, workflow_id, name, expression, timezone, input,"
            " catch_up, declared, next_fire_at) FROM STDIN"
        ) as copy,
    ):
        for i in range(n):
            copy.write_row(
                (
                    uuid.uuid4(),
                    tenant_id,
                    workflow_id,
                    f"c{i}",
                    "0 3 1 1 *",
                    "UTC",
                    "{}",
                    "latest",
                    False,
                    following,
                )
            )


def every_minute(conn: psycopg.Connection) -> None:
    """Each cron fires once a minute at its own second, from the next minute on."""
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    conn.execute(
        "UPDATE crons SET expression = ((substr(name, 2)::int %% 60)::text || ' * * * * *'),"
        " next_fire_at = %s + make_interval(mins => 1, secs => substr(name, 2)::int %% 60)",
        (start,),
    )


def measure_lag(conn: psycopg.Connection, seconds: float) -> list[float]:
    """Poll for new runs every 50 ms for ``seconds``; each run's lag in seconds. Only
    fire times after the first poll count: a run committed before it was not seen
    appear, and its lag would be the wait for the first poll."""
    seen: set[str] = set()
    lags: list[float] = []
    first = time.time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        polled = time.time()
        rows = conn.execute(
            "SELECT id, metadata->>'roost.fire_at' FROM runs"
            " WHERE created_at > now() - interval '30 seconds'"
        ).fetchall()
        for run_id, fire_at in rows:
            if run_id not in seen:
                seen.add(run_id)
                due = datetime.fromisoformat(fire_at).timestamp()
                if due > first:
                    lags.append(polled - due)
        time.sleep(0.05)
    return lags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--crons", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0, help="S2's length (60)")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="roost-sched-bench-") as tmp:
        stack = Stack(Path(tmp))
        try:
            stack.start()
            name = f"sched-bench-{uuid.uuid4().hex[:6]}"
            httpx.post(
                f"{stack.api_url}/api/v1/workflows",
                json={"name": name, "tasks": [{"name": "a", "parents": []}]},
                headers={"Authorization": f"Bearer {stack.token}"},
                timeout=30,
            ).raise_for_status()
            pid = stack.process("scheduler-0").pid
            time.sleep(5)  # let start-up settle
            console.print(f"S1: scheduler CPU over {args.idle_seconds:.0f} s, no crons")
            idle_none = cpu_percent(pid, args.idle_seconds)
            with psycopg.connect(stack.database_url, autocommit=True) as conn:
                ((workflow_id, tenant_id),) = conn.execute(
                    "SELECT id, tenant_id FROM workflows WHERE name = %s", (name,)
                ).fetchall()
                write_crons(conn, str(workflow_id), str(tenant_id), args.crons)
                console.print(f"S1: ... and with {args.crons} crons not due")
                idle_many = cpu_percent(pid, args.idle_seconds)
                every_minute(conn)
                console.print(
                    f"S2: {args.crons} crons each firing once a minute, for {args.seconds:.0f} s"
                )
                # From the next minute, every second has its crons.
                time.sleep(60 - datetime.now(UTC).second + 1)
                before = cpu_seconds(pid)
                started = time.monotonic()
                lags = measure_lag(conn, args.seconds)
                busy = 100.0 * (cpu_seconds(pid) - before) / (time.monotonic() - started)
                conn.execute("UPDATE crons SET paused = true")
                ((dupes,),) = conn.execute(
                    "SELECT count(*) - count(DISTINCT metadata->>'roost.cron_id' || "
                    "(metadata->>'roost.fire_at')) FROM runs"
                ).fetchall()
        finally:
            stack.stop()

    table = Table("measure", "value")
    table.add_row("S1 scheduler CPU, no crons (% of a core)", f"{idle_none:.2f}")
    table.add_row(f"S1 scheduler CPU, {args.crons} crons not due", f"{idle_many:.2f}")
    table.add_row("S2 runs fired (per second)", f"{len(lags)} ({len(lags) / args.seconds:.0f})")
    for q in (50, 99):
        table.add_row(f"S2 fire lag p{q} (ms)", f"{1000 * percentile(lags, q):.0f}")
    table.add_row("S2 fire lag max (ms)", f"{1000 * max(lags):.0f}")
    table.add_row("S2 scheduler CPU while firing (% of a core)", f"{busy:.1f}")
    table.add_row("S2 fire times fired twice", str(dupes))
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
