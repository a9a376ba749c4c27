"""The dashboard's benchmark (part of ``just bench``): is it fast with a million runs?

- D1  1,000,000 runs written straight into PostgreSQL (9 workflows of skewed
      popularity and a rare one, 90% succeeded / 7% failed / 3% cancelled over 20
      days; metadata
      ``repo`` of skewed popularity over 100 values, ``env`` prod/staging half and half,
      and a unique ``ticket``). Then the first 50 rows of the runs list, filtered by
      workflow and status, and by metadata pairs from one run to half of them:
      p50/p95 of the api's ``GET /api/v1/runs`` and of the dashboard's whole ``/runs``
      page (which calls the api, then renders), one request at a time.
- D2  a run page with a 500-task DAG (20 layers of 25, 950 edges) in headless Chromium:
      from navigation start to the graph drawn (``roost:dag-drawn``) and painted
      (``roost:dag-painted``, the frame after), for a finished run (its ~2,500 spans on
      the timeline) and while a run is going; then, on the page opened mid-run, how many
      tasks turned green live without a reload, how long after the run's end the page
      showed it all, and the main thread's long tasks (>50 ms) meanwhile.

Its own stack (tests/harness.py: a fresh database and vhost, the api, a scheduler, the
gateway, the ratelimiter), the dashboard and a worker; it stops all it started, by PID.

    .venv/bin/python tests/bench/dashboard_bench.py [--runs N] [--requests N] [--opens N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
# Run as a script, this folder is sys.path[0]; the package ``bench`` (this folder) must
# be found from tests/ instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(TESTS), str(REPO)]

import httpx  # noqa: E402
import psycopg  # noqa: E402
from chromium import CHROMIUM, CHROMIUM_ARGS, HAVE_CHROMIUM, MISSING  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402
from rich.table import Table  # noqa: E402

from bench import dashboard_flows as flows  # noqa: E402
from bench.bench import _cpu_model, console, log, percentile, stop_process  # noqa: E402
from harness import Process, Stack  # noqa: E402
from roost import Roost  # noqa: E402

BATCH = 100_000  # runs per INSERT: progress to watch, and no single huge transaction
TARGET_LIST_MS = 100.0
TARGET_DRAW_MS = 2000.0

# The runs lists measured: (label, query parameters). Metadata goes to the api as
# ``meta.KEY=VALUE`` and to the dashboard as ``meta=KEY=VALUE``.
QUERIES: list[tuple[str, dict[str, str]]] = [
    ("newest, no filter", {}),
    ("busiest workflow", {"workflow": "bench-catalog-0"}),
    ("rare workflow", {"workflow": "bench-catalog-9"}),
    ("workflow + SUCCEEDED", {"workflow": "bench-catalog-3", "status": "SUCCEEDED"}),
    ("workflow + FAILED", {"workflow": "bench-catalog-3", "status": "FAILED"}),
    ("workflow + CANCELLED", {"workflow": "bench-catalog-8", "status": "CANCELLED"}),
    ("rare workflow + FAILED", {"workflow": "bench-catalog-9", "status": "FAILED"}),
    ("meta env=prod", {"meta.env": "prod"}),
    ("meta repo=repo-0", {"meta.repo": "repo-0"}),
    ("meta repo=repo-90", {"meta.repo": "repo-90"}),
    ("meta ticket=T-500000", {"meta.ticket": "T-500000"}),
    (
        "workflow + FAILED + repo-5",
        {"workflow": "bench-catalog-0", "status": "FAILED", "meta.repo": "repo-5"},
    ),
]

GENERATE = """
WITH src AS (
    SELECT g, random() AS r_wf, random() AS r_at, random() AS r_status, random() AS r_took,
           random() AS r_repo, random() AS r_env
    FROM generate_series(%(lo)s::int, %(hi)s::int) AS g
)
INSERT INTO runs (id, tenant_id, workflow_id, workflow_version_id, workflow_name, status,
                  input, metadata, remaining_tasks, created_at, started_at, finished_at)
SELECT gen_random_uuid(), w.tenant_id, w.workflow_id, w.version_id, w.name,
       CASE WHEN s.r_status < 0.90 THEN 'SUCCEEDED'
            WHEN s.r_status < 0.97 THEN 'FAILED' ELSE 'CANCELLED' END,
       jsonb_build_object('n', s.g),
       jsonb_build_object('repo', 'repo-' || floor(100 * power(s.r_repo, 3))::int,
                          'env', CASE WHEN s.r_env < 0.5 THEN 'prod' ELSE 'staging' END,
                          'ticket', 'T-' || s.g),
       0, t.created, t.created + interval '50 ms',
       t.created + (1 + 120 * s.r_took) * interval '1 second'
FROM src s
-- Nine workflows of falling popularity; the tenth is rare (one run in a thousand).
JOIN bench_catalog w ON w.idx = CASE WHEN s.r_wf < 0.001 THEN 9
                                    ELSE floor(9 * power((s.r_wf - 0.001) / 0.999, 1.5))::int END
CROSS JOIN LATERAL (SELECT now() - s.r_at * interval '20 days' AS created) t
"""


def generate_runs(stack: Stack, count: int) -> float:
    """Write ``count`` finished runs of the catalog workflows straight into PostgreSQL,
    then VACUUM ANALYZE as autovacuum would; the seconds it took."""
    started = time.monotonic()
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE bench_catalog AS"
            " SELECT (row_number() OVER (ORDER BY w.name) - 1)::int AS idx, w.tenant_id,"
            "        w.id AS workflow_id, v.id AS version_id, w.name"
            " FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id"
            " WHERE w.name = ANY(%s)",
            (flows.CATALOG,),
        )
        (found,) = conn.execute("SELECT count(*) FROM bench_catalog").fetchone() or (0,)
        if found != len(flows.CATALOG):
            raise RuntimeError(f"{found} of {len(flows.CATALOG)} catalog workflows registered")
        conn.execute("SELECT setseed(0.42)")
        for lo in range(1, count + 1, BATCH):
            hi = min(lo + BATCH - 1, count)
            conn.execute(GENERATE, {"lo": lo, "hi": hi})  # type: ignore[arg-type]
            log(f"D1: {hi:,} runs written ({time.monotonic() - started:.0f} s)")
        conn.execute("VACUUM (ANALYZE) runs")
    return time.monotonic() - started


def matching(stack: Stack, params: dict[str, str]) -> int:
    """How many stored runs a query's filters match (to label it)."""
    where, args = ["true"], []
    for key, value in params.items():
        if key.startswith("meta."):
            where.append("metadata @> jsonb_build_object(%s::text, %s::text)")
            args += [key[5:], value]
        else:
            where.append(f"{'workflow_name' if key == 'workflow' else key} = %s")
            args.append(value)
    (row,) = stack.sql(f"SELECT count(*) FROM runs WHERE {' AND '.join(where)}", *args)
    return int(str(row[0]))


def timed(fetch: Any, requests: int, warmup: int = 5) -> list[float]:
    """Milliseconds of ``requests`` calls of ``fetch``, one at a time, after a warm-up."""
    for _ in range(warmup):
        fetch()
    out = []
    for _ in range(requests):
        began = time.perf_counter()
        fetch()
        out.append((time.perf_counter() - began) * 1000)
    return out


def measure_lists(
    stack: Stack, dashboard: str, requests: int
) -> list[tuple[str, int, list[float], list[float]]]:
    """Per query: the runs it matches, the api's times and the dashboard page's times."""
    api = httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30
    )
    page = httpx.Client(base_url=dashboard, timeout=30, cookies={"roost_session": stack.token})
    results = []
    try:
        for label, params in QUERIES:
            api_params = {**params, "limit": "50"}
            dash_params = {k: v for k, v in params.items() if not k.startswith("meta.")}
            pairs = [f"{k[5:]}={v}" for k, v in params.items() if k.startswith("meta.")]
            if pairs:
                dash_params["meta"] = " ".join(pairs)

            def from_api(api_params: dict[str, str] = api_params) -> httpx.Response:
                resp = api.get("/api/v1/runs", params=api_params)
                resp.raise_for_status()
                return resp

            def from_page(dash_params: dict[str, str] = dash_params) -> httpx.Response:
                resp = page.get("/runs", params=dash_params)
                resp.raise_for_status()
                return resp

            rows = len(from_api().json()["runs"])
            shown = from_page().text.count("data-run=")
            matches = matching(stack, params)
            if shown != rows or rows != min(50, matches):
                raise RuntimeError(
                    f"{label}: the page shows {shown} runs, the api {rows}, of {matches}"
                )
            api_ms = timed(from_api, requests)
            page_ms = timed(from_page, requests)
            log(
                f"D1: {label}: {matches:,} runs match, api p95 {percentile(api_ms, 95):.1f} ms,"
                f" page p95 {percentile(page_ms, 95):.1f} ms"
            )
            results.append((label, matches, api_ms, page_ms))
    finally:
        api.close()
        page.close()
    return results


# -- D2: the 500-task DAG in a browser ------------------------------------------------

# Collects the main thread's long tasks from the page's start (buffered), and the time
# each DAG node last changed its class, so the live updates can be timed afterwards.
WATCH_SCRIPT = """
window.__roost = { longTasks: [], lastChange: 0, changed: new Set() };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__roost.longTasks.push([e.startTime, e.duration]);
}).observe({ type: "longtask", buffered: true });
new MutationObserver((records) => {
  for (const r of records) {
    const node = r.target.closest && r.target.closest("g.node");
    if (node && r.attributeName === "class") {
      window.__roost.changed.add(node.dataset.node);
      window.__roost.lastChange = Date.now();
    }
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["class"] });
"""


def _mark(page: Page, name: str) -> float:
    page.wait_for_function(f"() => performance.getEntriesByName('{name}').length > 0")
    return float(page.evaluate(f"() => performance.getEntriesByName('{name}')[0].startTime"))


def open_run_page(page: Page, url: str) -> tuple[float, float]:
    """Navigate to a run's page; ms from navigation start to the DAG drawn and painted."""
    page.goto(url)
    drawn = _mark(page, "roost:dag-drawn")
    painted = _mark(page, "roost:dag-painted")
    nodes = page.locator("#dag g.node").count()
    if nodes != flows.LAYERS * flows.WIDTH:
        raise RuntimeError(f"the DAG shows {nodes} tasks, not {flows.LAYERS * flows.WIDTH}")
    return drawn, painted


def run_finished_at(stack: Stack, run_id: str) -> float:
    (row,) = stack.sql("SELECT extract(epoch FROM finished_at) FROM runs WHERE id = %s", run_id)
    return float(str(row[0]))


def measure_dag(stack: Stack, dashboard: str, dag: Any, opens: int, sleep: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.add_cookies([{"name": "roost_session", "value": stack.token, "url": dashboard}])
            context.add_init_script(WATCH_SCRIPT)
            page = context.new_page()
            page.set_default_timeout(120_000)

            # A finished run: its page carries all its tasks and spans.
            done = dag.run({"sleep": 0}, wait_for_result=False)
            done.result(timeout=300)
            time.sleep(3)  # its last spans are stored a moment after its end
            spans = len(stack.sql("SELECT 1 FROM spans WHERE run_id = %s", done.id))
            times = [open_run_page(page, f"{dashboard}/runs/{done.id}") for _ in range(opens)]
            out["finished"] = {
                "spans": spans,
                "drawn": [d for d, _ in times],
                "painted": [p for _, p in times],
            }
            log(f"D2: finished run ({spans} spans): drawn {[round(d) for d, _ in times]} ms")

            # A run going on: open its page at once, watch it turn green.
            live = dag.run({"sleep": sleep}, wait_for_result=False)
            drawn, painted = open_run_page(page, f"{dashboard}/runs/{live.id}")
            green_at_draw = page.locator("#dag g.node.status-succeeded").count()
            watch_from = float(page.evaluate("() => performance.now()"))
            live.result(timeout=600)
            page.wait_for_function(
                "() => document.querySelectorAll('#dag g.node.status-succeeded').length === "
                f"{flows.LAYERS * flows.WIDTH}"
                " && document.getElementById('run-status').textContent === 'SUCCEEDED'",
                timeout=60_000,
            )
            state = page.evaluate(
                "() => ({ lastChange: window.__roost.lastChange,"
                " changed: window.__roost.changed.size, longTasks: window.__roost.longTasks })"
            )
            long_tasks = [d for start, d in state["longTasks"] if start >= watch_from]
            out["live"] = {
                "drawn": drawn,
                "painted": painted,
                "green_at_draw": green_at_draw,
                "changed_live": state["changed"],
                "lag_ms": state["lastChange"] - run_finished_at(stack, live.id) * 1000,
                "long_tasks": long_tasks,
                "run_seconds": run_finished_at(stack, live.id)
                - float(
                    str(
                        stack.sql(
                            "SELECT extract(epoch FROM created_at) FROM runs WHERE id = %s", live.id
                        )[0][0]
                    )
                ),
            }
            log(f"D2: live run: {out['live']}")
        finally:
            browser.close()
    return out


def report(
    runs: int,
    seconds: float,
    lists: list[tuple[str, int, list[float], list[float]]],
    dag: dict[str, Any],
) -> None:
    console.print(
        f"\n[bold]Dashboard with {runs:,} runs stored[/] ({seconds:.0f} s to write them);"
        f" {_cpu_model()}"
    )
    table = Table(
        "runs list, first 50",
        "runs matching",
        "api p50",
        "api p95",
        "page p50",
        "page p95",
        f"≤{TARGET_LIST_MS:.0f} ms",
    )
    for label, rows, api_ms, page_ms in lists:
        worst = percentile(page_ms, 95)
        table.add_row(
            label,
            f"{rows:,}",
            f"{percentile(api_ms, 50):.1f}",
            f"{percentile(api_ms, 95):.1f}",
            f"{percentile(page_ms, 50):.1f}",
            f"{worst:.1f}",
            "yes" if worst <= TARGET_LIST_MS else "[red]no[/]",
        )
    console.print(table)
    finished = dag["finished"]
    live = dag["live"]
    table = Table(
        "500-task DAG run page (Chromium)", "drawn ms", "painted ms", f"≤{TARGET_DRAW_MS:.0f} ms"
    )
    painted = finished["painted"]
    table.add_row(
        f"finished run, {finished['spans']} spans (median of {len(painted)})",
        f"{percentile(finished['drawn'], 50):.0f}",
        f"{percentile(painted, 50):.0f}",
        "yes" if max(painted) <= TARGET_DRAW_MS else "[red]no[/]",
    )
    table.add_row(
        f"  worst of {len(painted)}", f"{max(finished['drawn']):.0f}", f"{max(painted):.0f}", ""
    )
    table.add_row(
        "run going on",
        f"{live['drawn']:.0f}",
        f"{live['painted']:.0f}",
        "yes" if live["painted"] <= TARGET_DRAW_MS else "[red]no[/]",
    )
    console.print(table)
    long_tasks = live["long_tasks"]
    console.print(
        f"Live: the run took {live['run_seconds']:.1f} s; {live['green_at_draw']} tasks were"
        f" green when the page was drawn, {live['changed_live']} tasks changed live without a"
        f" reload; the page showed the run's end {live['lag_ms']:.0f} ms after it;"
        f" {len(long_tasks)} long tasks meanwhile (longest"
        f" {max(long_tasks, default=0):.0f} ms, {sum(long_tasks):.0f} ms in all)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs to store (1,000,000)")
    parser.add_argument("--requests", type=int, default=100, help="requests per list (100)")
    parser.add_argument("--opens", type=int, default=5, help="opens of the finished run (5)")
    parser.add_argument("--sleep", type=float, default=0.3, help="each live task's sleep (s)")
    args = parser.parse_args(argv)
    if not HAVE_CHROMIUM:
        raise SystemExit(MISSING)

    with tempfile.TemporaryDirectory(prefix="roost-dash-bench-") as tmp:
        stack = Stack(Path(tmp))
        worker: Process | None = None
        try:
            stack.start()
            client = Roost(
                api_url=stack.api_url,
                token=stack.token,
                broker_url=stack.env["ROOST_BROKER_URL"],
                namespace=stack.env["ROOST_NAMESPACE"],
                tls_strategy="none",
            )
            for wf in flows.build_catalog(client):
                wf.register()
            dag = flows.build_dag(client)
            log(f"D1: writing {args.runs:,} runs into PostgreSQL")
            seconds = generate_runs(stack, args.runs)
            worker = stack.start_worker(
                "bench.dashboard_flows:worker", processes=2, threads=8, name="dash-bench-worker"
            )
            dashboard, _ = stack.start_dashboard()
            lists = measure_lists(stack, dashboard, args.requests)
            dag_numbers = measure_dag(stack, dashboard, dag, args.opens, args.sleep)
            client.close()
        finally:
            if worker is not None:
                stop_process(worker)
            stack.stop()
    report(args.runs, seconds, lists, dag_numbers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
