"""The ``roost`` command line: one module per command group (``roost.cli.runs``,
``events``, ``workers``, ``rate_limits``, ``crons``, ``scheduled``, ``approvals``,
``tokens``), the service launchers (``services``), ``doctor``, and what they share
(``console``)."""

from __future__ import annotations

import os

import typer
from opentelemetry import context

from roost.cli import doctor, runs, services
from roost.cli.approvals import approvals_app
from roost.cli.crons import crons_app
from roost.cli.events import events_app
from roost.cli.rate_limits import rate_limits_app
from roost.cli.runs import runs_app
from roost.cli.scheduled import scheduled_app
from roost.cli.tokens import token_app
from roost.cli.workers import workers_app
from roost_core import tracing

app = typer.Typer(
    help="Roost: durable DAG workflows.", no_args_is_help=True, pretty_exceptions_enable=False
)
# Registered in the order `roost --help` has always listed them.
for command in (
    services.migrate,
    services.api,
    services.scheduler,
    services.gateway,
    services.ratelimiter,
    services.dashboard,
    services.worker,
    runs.run,
    doctor.doctor,
):
    app.command()(command)
app.add_typer(token_app, name="token")
app.add_typer(runs_app, name="runs")
app.add_typer(workers_app, name="workers")
app.add_typer(events_app, name="events")
app.add_typer(rate_limits_app, name="rate-limits")
app.add_typer(crons_app, name="crons")
app.add_typer(scheduled_app, name="scheduled")
app.add_typer(approvals_app, name="approvals")


def main() -> None:
    # A caller's trace in the environment (TRACEPARENT, as CI systems and
    # otel-cli pass it): what this command triggers joins it.
    parent = os.environ.get("TRACEPARENT")
    if parent:
        carrier = {"traceparent": parent, "tracestate": os.environ.get("TRACESTATE", "")}
        context.attach(tracing.extract(carrier))
    app()


__all__ = ["app", "main"]
