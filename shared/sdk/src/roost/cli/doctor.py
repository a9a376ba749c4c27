"""``roost doctor``: check the api, the broker and the database."""

from __future__ import annotations

from typing import Any

import typer

from roost.cli.console import client, out


def doctor() -> None:
    """Check the api, the broker and the database, and say what to fix."""
    from roost_core import broker as core_broker
    from roost_core.db import describe
    from roost_core.settings import CoreSettings

    problems = 0
    settings = CoreSettings()
    roost = client()
    checks: list[tuple[str, Any]] = []

    def check_api() -> str:
        roost.workflows.list()
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
