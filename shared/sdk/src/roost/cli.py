"""The ``roost`` command line."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from roost._errors import RoostError
from roost._models import Run
from roost._roost import Roost
from roost_core import metadata as run_metadata

app = typer.Typer(
    help="Roost: durable DAG workflows.", no_args_is_help=True, pretty_exceptions_enable=False
)
token_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect runs.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(runs_app, name="runs")
out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _database_url() -> str:
    from roost_core.settings import CoreSettings

    return CoreSettings().database_url


def _exec_service(module: str, package: str) -> NoReturn:
    if importlib.util.find_spec(module) is None:
        _fail(f"the {package} service is not installed here: install the {package!r} package")
    os.execvp(sys.executable, [sys.executable, "-m", module])


@app.command()
def migrate() -> None:
    """Apply database migrations (ROOST_DATABASE_URL, or the PG* variables)."""
    from roost_core import migrations

    try:
        applied = migrations.apply(_database_url())
    except RoostError as exc:
        _fail(str(exc))
    out.print(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="a name to recognise the token by")],
) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    from roost_core import tokens

    try:
        print(tokens.create(_database_url(), name))
    except RoostError as exc:
        _fail(str(exc))


@app.command()
def api() -> None:
    """Run the api service (ROOST_API_HOST, ROOST_API_PORT, ROOST_TLS_CERT/KEY)."""
    _exec_service("roost_api", "roost-api")


@app.command()
def scheduler() -> None:
    """Run a scheduler replica."""
    _exec_service("roost_scheduler", "roost-scheduler")


@app.command()
def gateway() -> None:
    """Run the event gateway: live events over SSE (ROOST_GATEWAY_HOST, ROOST_GATEWAY_PORT)."""
    _exec_service("roost_gateway", "roost-gateway")


@app.command()
def ratelimiter() -> None:
    """Run a ratelimiter replica: admits rate-limited tasks to their worker queues."""
    _exec_service("roost_ratelimiter", "roost-ratelimiter")


@app.command()
def dashboard() -> None:
    """Run the dashboard (ROOST_DASHBOARD_HOST, ROOST_DASHBOARD_PORT; reads through
    ROOST_API_URL and ROOST_GATEWAY_URL)."""
    _exec_service("roost_dashboard", "roost-dashboard")


@app.command()
def worker(
    target: Annotated[str, typer.Argument(help="module:attr of a roost Worker")],
    processes: Annotated[int, typer.Option(help="worker processes")] = 1,
    threads: Annotated[
        int | None, typer.Option(help="threads per process (default: slots)")
    ] = None,
    shutdown_grace: Annotated[
        float,
        typer.Option(
            help="on SIGTERM, seconds running tasks may take to finish; the rest go back "
            "to the queue for other workers"
        ),
    ] = 30.0,
) -> None:
    """Run Dramatiq worker processes serving a Worker's workflows.

    SIGTERM stops taking work, lets running tasks finish for --shutdown-grace seconds,
    then exits; RabbitMQ hands what was still running or prefetched to other workers."""
    import dramatiq.cli

    from roost._worker import load_worker

    try:
        w = load_worker(target)
        w.register()
    except RoostError as exc:
        _fail(str(exc))
    w.roost.close()  # no sockets shared across the fork
    os.environ["ROOST_WORKER_TARGET"] = target
    options = [
        "roost._boot:broker",
        "--processes",
        str(processes),
        "--threads",
        str(threads or w.slots),
        "--path",
        os.getcwd(),
        "--worker-shutdown-timeout",
        str(int(shutdown_grace * 1000)),
    ]
    if os.environ.get("ROOST_LOG_FORMAT", "").strip().lower() == "json":
        # JSON lines from the supervisor too; each worker process sets up its own in
        # roost._boot (through Dramatiq's pipe, so lines never interleave).
        from roost_core import logs

        logs.configure("worker")
        options.append("--skip-logging")
    args = dramatiq.cli.make_argument_parser().parse_args(options)  # type: ignore[no-untyped-call]
    sys.exit(dramatiq.cli.main(args))  # type: ignore[no-untyped-call]


def _client() -> Roost:
    try:
        return Roost()
    except Exception as exc:
        _fail(f"bad settings: {exc}")


@app.command()
def run(
    workflow: Annotated[str, typer.Argument(help="workflow name")],
    input: Annotated[str, typer.Option("--input", help="run input as JSON")] = "{}",
    wait: Annotated[bool, typer.Option("--wait", help="wait for the run to end")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="watch the run live (its tasks, progress, logs)")
    ] = False,
    idempotency_key: Annotated[str | None, typer.Option(help="same key, same run")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds to wait with --wait")] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="metadata KEY=VALUE (repeatable)")
    ] = None,
) -> None:
    """Trigger a run of a registered workflow."""
    try:
        payload = json.loads(input)
    except json.JSONDecodeError as exc:
        _fail(f"--input is not valid JSON ({exc}): {input!r}")
    pairs = _meta(meta)
    roost = _client()
    try:
        body = roost.api.request(
            "POST",
            f"/api/v1/workflows/{workflow}/runs",
            json={"input": payload, "idempotency_key": idempotency_key, "metadata": pairs},
        )
        out.print(f"run {body['id']} {body['status']}", highlight=False)
        if watch:
            _watch(roost, Run.model_validate(body))
        elif wait:
            final = roost.runs.wait(body["id"], timeout)
            _print_run(final)
            if final.status != "SUCCEEDED":
                raise typer.Exit(1)
    except RoostError as exc:
        _fail(str(exc))


@runs_app.command("list")
def runs_list(
    workflow: Annotated[str | None, typer.Option(help="only this workflow")] = None,
    status: Annotated[str | None, typer.Option(help="only this status")] = None,
    limit: Annotated[int, typer.Option(help="page size")] = 20,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="only runs with metadata KEY=VALUE (repeatable)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List runs, newest first."""
    pairs = _meta(meta)
    try:
        runs, _ = _client().runs.list(workflow=workflow, status=status, limit=limit, meta=pairs)
    except RoostError as exc:
        _fail(str(exc))
    if json_out:
        print(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
        return
    table = Table("id", "workflow", "status", "created", "duration", "metadata")
    for r in runs:
        table.add_row(
            r.id,
            r.workflow,
            r.status,
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            _duration(r.started_at, r.finished_at),
            " ".join(f"{k}={v}" for k, v in sorted(r.metadata.items())),
        )
    out.print(table)


@runs_app.command("cancel")
def runs_cancel(run_id: Annotated[str, typer.Argument(help="run id")]) -> None:
    """Cancel a run: queued tasks never start, running ones are interrupted."""
    try:
        found = _client().runs.cancel(run_id)
    except RoostError as exc:
        _fail(str(exc))
    _print_run(found)


@runs_app.command("replay")
def runs_replay(run_id: Annotated[str, typer.Argument(help="run id")]) -> None:
    """Re-run an ended run's failed and cancelled tasks and their descendants."""
    try:
        found = _client().runs.replay(run_id)
    except RoostError as exc:
        _fail(str(exc))
    _print_run(found)


def _watch(roost: Roost, run: Run) -> None:
    """Follow ``run`` live until it ends; exit 1 unless it succeeded."""
    from rich.live import Live

    from roost._watch import RunView

    view = RunView(run)
    with Live(view.render(), console=out, refresh_per_second=8) as live:
        for event in roost.runs.subscribe(run.id):
            view.apply(event)
            live.update(view.render())
    if view.status != "SUCCEEDED":
        raise typer.Exit(1)


@runs_app.command("logs")
def runs_logs(
    run_id: Annotated[str, typer.Argument(help="run id")],
    task: Annotated[str | None, typer.Option(help="only this task's lines")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new lines until the run ends")
    ] = False,
) -> None:
    """Print a run's log lines (every task's, oldest first)."""
    from datetime import datetime

    def show(at: float, name: str | None, attempt: int | None, message: str) -> None:
        stamp = datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]
        out.print(f"[dim]{stamp}[/] [bold]{name}[/]#{attempt} {message}", highlight=False)

    roost = _client()
    try:
        if not follow:
            after: int | None = 0
            while after is not None:
                lines, after = roost.runs.logs(run_id, task=task, after=after, limit=500)
                for line in lines:
                    show(line["at"], line["task"], line["attempt"], line["message"])
            return
        for event in roost.runs.subscribe(run_id, types=["task.log", "run.*"]):
            if event.type == "task.log" and (task is None or event.task == task):
                show(event.at, event.task, event.attempt, str(event.data.get("message", "")))
    except RoostError as exc:
        _fail(str(exc))


@runs_app.command("trace")
def runs_trace(
    run_id: Annotated[str, typer.Argument(help="run id")],
    json_out: Annotated[bool, typer.Option("--json", help="print the spans as JSON")] = False,
) -> None:
    """Show where a run spent its time: its trace as a waterfall, one line per span,
    indented under its parent, with durations and bars (from Roost's own span store:
    no collector needed)."""
    from roost._waterfall import render

    try:
        found = _client().runs.trace(run_id)
    except RoostError as exc:
        _fail(str(exc))
    if json_out:
        print(found.model_dump_json(indent=2))
        return
    out.print(render(found, width=out.width))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="run id")],
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show a run and each of its tasks."""
    try:
        found = _client().runs.get(run_id)
    except RoostError as exc:
        _fail(str(exc))
    if json_out:
        print(found.model_dump_json(indent=2))
        return
    _print_run(found)


def _meta(pairs: list[str] | None) -> dict[str, str]:
    """``--meta KEY=VALUE`` options as run metadata (a bad pair stops the command)."""
    try:
        return run_metadata.parse_pairs(pairs or [])
    except ValueError as exc:
        _fail(f"--meta: {exc}")


def _duration(start: Any, end: Any) -> str:
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds() * 1000:.0f} ms"


def _print_run(run: Run) -> None:
    out.print(
        f"run [bold]{run.id}[/] of {run.workflow} (version {run.workflow_version}): "
        f"[bold]{run.status}[/]",
        highlight=False,
    )
    # Task names are never cut: the other columns give way.
    table = Table(
        Column("task", no_wrap=True), "status", "attempt", "worker", "duration", "output / error"
    )
    for t in run.tasks:
        detail = json.dumps(t.output) if t.output is not None else ""
        if t.error:
            detail = f"{t.error.get('type')}: {t.error.get('message')}"
        table.add_row(
            t.name,
            t.status,
            str(t.attempt),
            t.worker_id or "-",
            _duration(t.started_at, t.finished_at),
            detail[:120],
        )
    out.print(table)
    if run.error:
        out.print(f"[red]{run.error.get('message')}[/]", highlight=False)


workers_app = typer.Typer(help="Inspect worker processes.", no_args_is_help=True)
app.add_typer(workers_app, name="workers")


@workers_app.command("list")
def workers_list(
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Worker processes from their heartbeats: alive, draining, stopped or dead, slots
    busy, workflows, versions."""
    try:
        body = _client().api.request("GET", "/api/v1/workers")
    except RoostError as exc:
        _fail(str(exc))
    if json_out:
        print(json.dumps(body["workers"], indent=2))
        return
    table = Table(
        Column("worker", no_wrap=True),
        Column("status", no_wrap=True),
        "busy",
        "workflows",
        Column("version", no_wrap=True),
        "sdk",
        "last heartbeat",
    )
    for w in body["workers"]:
        table.add_row(
            w["id"],
            Text(w["status"], style=_WORKER_STYLE.get(w["status"], "")),
            f"{w['running']}/{w['slots']}",
            ", ".join(w["workflows"]),
            w.get("version") or "-",  # .get: an older api does not send them
            w.get("sdk_version") or "-",
            w["last_heartbeat_at"],
        )
    out.print(table)


# The dashboard's colours: taking work, finishing it, gone cleanly, gone silent.
_WORKER_STYLE = {"alive": "green", "draining": "yellow", "stopped": "dim", "dead": "red"}


events_app = typer.Typer(help="Push events and list them.", no_args_is_help=True)
app.add_typer(events_app, name="events")


@events_app.command("push")
def events_push(
    key: Annotated[str, typer.Argument(help="event key, e.g. task:ready")],
    data: Annotated[str, typer.Option("--data", help="event data as JSON")] = "{}",
    idempotency_key: Annotated[
        str | None, typer.Option(help="same key, same event: pushing again starts nothing")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Push an event: every workflow whose on_events matches KEY starts a run."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        _fail(f"--data is not valid JSON ({exc}): {data!r}")
    try:
        event = _client().events.push(key, payload, idempotency_key=idempotency_key)
    except RoostError as exc:
        _fail(str(exc))
    if json_out:
        print(event.model_dump_json(indent=2))
        return
    out.print(f"event {event.id} ({event.key}) started {len(event.runs)} run(s)", highlight=False)
    for r in event.runs:
        out.print(f"  run {r.id} of {r.workflow}", highlight=False)


@events_app.command("list")
def events_list(
    key: Annotated[str | None, typer.Option(help="only events with exactly this key")] = None,
    limit: Annotated[int, typer.Option(help="page size")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List pushed events, newest first, with the runs each started."""
    try:
        found, _ = _client().events.list(key=key, limit=limit)
    except RoostError as exc:
        _fail(str(exc))
    if json_out:
        print(json.dumps([e.model_dump(mode="json") for e in found], indent=2))
        return
    # Ids and keys are never cut: the other columns give way.
    table = Table(
        Column("id", no_wrap=True), Column("key", overflow="fold"), "created", "runs started"
    )
    for e in found:
        table.add_row(
            e.id,
            e.key,
            e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            ", ".join(r.workflow for r in e.runs) or "-",
        )
    out.print(table)


@app.command()
def doctor() -> None:
    """Check the api, the broker and the database, and say what to fix."""
    from roost_core import broker as core_broker
    from roost_core.db import describe
    from roost_core.settings import CoreSettings

    problems = 0
    settings = CoreSettings()
    roost = _client()
    checks: list[tuple[str, Any]] = []

    def check_api() -> str:
        roost.api.request("GET", "/api/v1/workflows")
        return f"api reachable at {roost.api.base_url}, token accepted"

    def check_broker() -> str:
        conn = core_broker.connect(settings.broker_url)
        conn.close()
        return f"RabbitMQ reachable at {core_broker.redact(settings.broker_url)}"

    def check_db() -> str:
        import psycopg

        from roost_core import migrations

        with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
            applied = migrations.count_applied(conn)
        return f"PostgreSQL reachable ({describe(settings.database_url)}), {applied} migration(s)"

    hints = {
        "api": "start it with `roost api` (or `just up`); check ROOST_API_URL and ROOST_TOKEN",
        "broker": "start RabbitMQ (`rabbitmq-server -detached`) and check ROOST_BROKER_URL",
        "database": "start PostgreSQL, check ROOST_DATABASE_URL, then run `roost migrate`",
    }
    checks = [("api", check_api), ("broker", check_broker), ("database", check_db)]
    for name, fn in checks:
        try:
            out.print(f"[green]ok[/]   {name}: {fn()}", highlight=False)
        except Exception as exc:
            problems += 1
            out.print(f"[red]FAIL[/] {name}: {exc}\n     fix: {hints[name]}", highlight=False)
    if problems:
        raise typer.Exit(1)


rate_limits_app = typer.Typer(help="Fleet-wide rate limits.", no_args_is_help=True)
app.add_typer(rate_limits_app, name="rate-limits")


@rate_limits_app.command("put")
def rate_limits_put(
    key: Annotated[str, typer.Argument(help="the key, e.g. opencode-sessions")],
    limit: Annotated[int, typer.Argument(help="units allowed")],
    duration: Annotated[
        str | None,
        typer.Option(help="second|minute|hour|day; omit for a concurrency limit"),
    ] = None,
) -> None:
    """Create or change a rate-limit key (takes effect at once)."""
    try:
        found = _client().rate_limits.put(key, limit, duration)  # type: ignore[arg-type]
    except RoostError as exc:
        _fail(str(exc))
    window = f"per {found.window}" if found.window else "at once (concurrency)"
    out.print(f"{found.key}: {found.limit} {window}", highlight=False)


@rate_limits_app.command("list")
def rate_limits_list(
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Every key: limit, window, units in use and left, tasks waiting."""
    try:
        found = _client().rate_limits.list()
    except RoostError as exc:
        _fail(str(exc))
    if json_out:
        print(json.dumps([r.model_dump() for r in found], indent=2))
        return
    table = Table(Column("key", no_wrap=True), "limit", "window", "in use", "left", "waiting")
    for r in found:
        table.add_row(
            r.key,
            str(r.limit),
            r.window or "concurrency",
            str(r.units_in_use),
            str(r.units_left),
            str(r.waiting),
        )
    out.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
