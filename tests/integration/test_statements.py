"""Every named statement parses and type-checks against the real schema (PREPARE on the
session's migrated database: cheap, and it finds a typo no other test reaches)."""

from __future__ import annotations

import re

import psycopg

import roost_api.statements
import roost_gateway.statements
import roost_scheduler.statements
from harness import Stack
from roost_core import queries

# %(name)s is a text parameter, %(name)b a binary one (arrays: roost_core.queries).
_PARAM = re.compile(r"%\(([a-z_]+)\)[sb]")
# PREPARE takes these; the rest (VACUUM, ANALYZE, SHOW, CREATE TABLE) it cannot.
_PREPARABLE = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "(")
# Every set of statements: the core's, and each service's own.
_SETS = (queries.SQL, roost_api.statements.SQL, roost_gateway.statements.SQL,
         roost_scheduler.statements.SQL)  # fmt: skip


def _positional(sql: str) -> str:
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    return _PARAM.sub(number, sql).replace("%%", "%")


def test_every_statement_prepares(stack: Stack) -> None:
    failures: dict[str, str] = {}
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        for loaded in _SETS:
            for name in sorted(loaded.names - loaded.included):
                sql = loaded[name]
                if not sql.lstrip().upper().startswith(_PREPARABLE):
                    continue
                try:
                    conn.execute(f"PREPARE check_{name} AS {_positional(sql)}")
                    conn.execute(f"DEALLOCATE check_{name}")
                except psycopg.Error as exc:
                    failures[f"{loaded.source(name)}: {name}"] = str(exc).splitlines()[0]
    assert not failures, failures
