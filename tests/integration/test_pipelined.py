"""roost_core.pipelined against the real PostgreSQL: a transaction whose statements,
BEGIN and COMMIT go out together and cost the reads they need plus one round trip; a
statement's rows read after the block; and on any failure (SQL, Python, at COMMIT)
nothing committed and the connection usable again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pgtrace
import psycopg
import pytest
from psycopg.pq import TransactionStatus

from harness import Stack
from roost_core import pipelined

Table = tuple[psycopg.Connection[Any], str]


@pytest.fixture
def table(stack: Stack) -> Iterator[Table]:
    """An autocommit connection and a table of its own, whose values are unique (checked
    at COMMIT)."""
    name = f"pipelined_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TEMP TABLE {name} (v int,"
            " CONSTRAINT once UNIQUE (v) DEFERRABLE INITIALLY DEFERRED)"
        )
        yield conn, name


def _syncs(conn: psycopg.Connection[Any], work: Any) -> int:
    """How many Sync messages (round trips) ``work`` sent."""
    return pgtrace.sent(conn, work).count("Sync")


def test_a_transaction_costs_its_reads_plus_one_round_trip(table: Table) -> None:
    conn, name = table
    cur = conn.cursor()

    def write() -> None:
        with pipelined.transaction(conn):
            conn.execute(f"INSERT INTO {name} VALUES (1)")
            cur.execute(f"INSERT INTO {name} VALUES (2) RETURNING v")  # read after COMMIT

    def psycopgs_own() -> None:
        with conn.pipeline(), conn.transaction():
            conn.execute(f"INSERT INTO {name} VALUES (3)")
            conn.execute(f"INSERT INTO {name} VALUES (4) RETURNING v").fetchall()

    assert _syncs(conn, write) == 1  # BEGIN, both inserts and COMMIT: one Sync
    assert cur.fetchall() == [(2,)]
    assert _syncs(conn, psycopgs_own) >= 4  # what it replaces (psycopg 3.3)
    assert conn.execute(f"SELECT v FROM {name} ORDER BY v").fetchall() == [(1,), (2,), (3,), (4,)]


@pytest.mark.parametrize("failure", ["sql", "python", "commit"])
def test_a_failure_commits_nothing_and_leaves_the_connection_usable(
    table: Table, failure: str
) -> None:
    conn, name = table
    conn.execute(f"INSERT INTO {name} VALUES (1)")
    expected = ValueError if failure == "python" else psycopg.errors.UniqueViolation
    with pytest.raises(expected), pipelined.transaction(conn):
        conn.execute(f"INSERT INTO {name} VALUES (7)")
        if failure == "sql":  # a statement fails (a duplicate, checked at once)
            conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
            conn.execute(f"INSERT INTO {name} VALUES (1)")
            conn.execute("SELECT 1").fetchall()
        elif failure == "python":
            raise ValueError("the engine's own error")
        else:  # the COMMIT fails (a deferred constraint)
            conn.execute(f"INSERT INTO {name} VALUES (1)")

    assert conn.info.transaction_status == TransactionStatus.IDLE
    assert conn.execute(f"SELECT v FROM {name} ORDER BY v").fetchall() == [(1,)]
