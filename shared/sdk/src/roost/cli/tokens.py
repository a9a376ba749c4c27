"""``roost token``: API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from roost._errors import RoostError
from roost.cli.console import fail
from roost.cli.services import database_url

token_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="a name to recognise the token by")],
) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    from roost_core import tokens

    try:
        print(tokens.create(database_url(), name))
    except RoostError as exc:
        fail(str(exc))
