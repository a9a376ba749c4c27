"""Every SQL statement is named once, used somewhere, and asked for by a name that exists."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

from roost_core import queries
from roost_core.queries import Queries, QueryFileError, UnknownQueryError

# Every package that runs statements; importing a module binds the statements it uses.
PACKAGES = ("roost_core", "roost_api", "roost_scheduler", "roost_ratelimiter", "roost_gateway")


def _import_everything() -> None:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)


def test_every_named_statement_is_used() -> None:
    _import_everything()
    assert queries.LOADED
    for loaded in queries.LOADED:
        assert not loaded.unused, {name: loaded.source(name) for name in loaded.unused}


def test_statements_take_named_parameters_only() -> None:
    for loaded in queries.LOADED:
        for name in loaded.names:
            assert "%s" not in loaded[name], name


def test_array_parameters_are_bound_in_binary() -> None:
    # psycopg dumps a list in text format element by element in Python (escaping each
    # one): ~8x the client CPU of the binary format for the engine's parallel arrays.
    _import_everything()
    text_arrays = re.compile(r"%\([a-z_]+\)s::[a-z0-9_ ]+\[\]")
    for loaded in queries.LOADED:
        for name in loaded.names:
            assert not text_arrays.search(loaded[name]), (loaded.source(name), name)


def test_an_unknown_name_fails_when_asked_for() -> None:
    with pytest.raises(UnknownQueryError, match="no_such_statement"):
        _ = queries.SQL.no_such_statement


def test_a_name_used_twice_fails_at_load() -> None:
    block = "-- twice --\n-- Says nothing.\nSELECT 1;\n"
    with pytest.raises(QueryFileError, match="'twice' named twice"):
        Queries({"a.sql": block, "b.sql": block})


def test_a_statement_without_its_comment_fails_at_load() -> None:
    with pytest.raises(QueryFileError, match="'bare' has no comment"):
        Queries({"a.sql": "-- bare --\nSELECT 1;\n"})


def test_blocks_are_read_with_fragments_and_without_comments_or_semicolons() -> None:
    loaded = Queries(
        {
            "a.sql": "-- one --\n-- The one.\n-- More about it.\nSELECT {{two}} + 1;\n\n"
            "-- two --\n-- A fragment.\n%(x)s\n"
        }
    )
    assert loaded.one == "SELECT %(x)s + 1"
    assert loaded["two"] == "%(x)s"
    assert loaded.unused == frozenset()
