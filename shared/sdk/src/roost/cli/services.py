"""Commands that run Roost's own processes: the services, worker processes, and the
database's migrations."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Annotated, NoReturn

import typer

from roost._errors import RoostError
from roost.cli.console import fail, out


def database_url() -> str:
    from roost_core.settings import CoreSettings

    return CoreSettings().database_url


def _exec_service(module: str, package: str) -> NoReturn:
    if importlib.util.find_spec(module) is None:
        fail(f"the {package} service is not installed here: install the {package!r} package")
    os.execvp(sys.executable, [sys.executable, "-m", module])


def migrate() -> None:
    """Apply database migrations (ROOST_DATABASE_URL, or the PG* variables)."""
    from roost_core import migrations

    try:
        applied = migrations.apply(database_url())
    except RoostError as exc:
        fail(str(exc))
    out.print(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


def api() -> None:
    """Run the api service (ROOST_API_HOST, ROOST_API_PORT, ROOST_TLS_CERT/KEY)."""
    _exec_service("roost_api", "roost-api")


def scheduler() -> None:
    """Run a scheduler replica."""
    _exec_service("roost_scheduler", "roost-scheduler")


def gateway() -> None:
    """Run the event gateway: live events over SSE (ROOST_GATEWAY_HOST, ROOST_GATEWAY_PORT)."""
    _exec_service("roost_gateway", "roost-gateway")


def ratelimiter() -> None:
    """Run a ratelimiter replica: admits rate-limited tasks to their worker queues."""
    _exec_service("roost_ratelimiter", "roost-ratelimiter")


def dashboard() -> None:
    """Run the dashboard (ROOST_DASHBOARD_HOST, ROOST_DASHBOARD_PORT; reads through
    ROOST_API_URL and ROOST_GATEWAY_URL)."""
    _exec_service("roost_dashboard", "roost-dashboard")


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
        fail(str(exc))
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
