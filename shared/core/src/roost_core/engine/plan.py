"""Transitions written once for both kinds of connection.

The scheduler and the ratelimiter talk to PostgreSQL through blocking psycopg
connections, the api through async ones. A transition written as a *plan* serves both:
a generator that yields each :class:`Statement` it needs and receives that statement's
rows back, with every decision in between written once. :func:`run` carries a plan out
on a blocking cursor, :func:`run_async` on an async one; plans compose with
``yield from``. (The "sans-I/O" style of h11 and hyper-h2, applied to SQL.)

On a connection in pipeline mode (``conn.pipeline()``, issue #17) a statement is sent
without waiting for the one before it: the runners wait only for the rows a plan reads,
so a statement yielded with ``rows=False`` costs no round trip of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import pq

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Statement:
    """One SQL statement and its parameters; the rows it returns (none without a
    RETURNING or SELECT) are sent back to the plan that yielded it."""

    sql: str
    params: Any = None
    # False: the plan does not read this statement's rows (it is sent a [] instead), so a
    # pipelined connection need not wait for them before sending the next statement.
    rows: bool = True
    # True: when it is its plan's last statement, its rows may be read after the caller's
    # COMMIT (:func:`run_deferred`), so that on a pipelined connection the two cost one
    # round trip. Plain runners read them at once, as any other statement's.
    deferrable: bool = False


Plan = Generator[Statement, Rows, T]


def run(cur: psycopg.Cursor[Any], plan: Plan[T]) -> T:
    """Carry ``plan`` out on a blocking cursor, inside the caller's transaction."""
    try:
        statement = next(plan)
        while True:
            cur.execute(statement.sql, statement.params)
            rows = _rows(cur) if statement.rows else []
            statement = plan.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result


def run_deferred(cur: psycopg.Cursor[Any], plan: Plan[T]) -> Callable[[], T]:
    """:func:`run`, except that a ``deferrable`` last statement is only sent: the result
    is the function that reads its rows and finishes the plan. Call it once the
    caller's transaction has ended (on a pipelined connection, inside the pipeline:
    one round trip carries that statement's rows and the COMMIT). ``cur`` must not run
    anything else meanwhile."""
    try:
        statement = next(plan)
        while not statement.deferrable:
            cur.execute(statement.sql, statement.params)
            statement = plan.send(_rows(cur) if statement.rows else [])
        cur.execute(statement.sql, statement.params)
    except StopIteration as done:
        value: T = done.value
        return lambda: value

    def finish() -> T:
        try:
            plan.send(_rows(cur))
        except StopIteration as done:
            result: T = done.value
            return result
        raise RuntimeError("a deferrable statement must be its plan's last")

    return finish


async def run_async(cur: psycopg.AsyncCursor[Any], plan: Plan[T]) -> T:
    """:func:`run` on an async cursor."""
    try:
        statement = next(plan)
        while True:
            await cur.execute(statement.sql, statement.params)
            rows = await _rows_async(cur) if statement.rows else []
            statement = plan.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result


def _no_rows(cur: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> bool:
    """Whether the statement just run returned no rows at all (no RETURNING or SELECT).
    In pipeline mode its result is known only once fetched, so this says False then."""
    res = cur.pgresult
    return res is not None and res.status == pq.ExecStatus.COMMAND_OK


def _rows(cur: psycopg.Cursor[Any]) -> Rows:
    if _no_rows(cur):
        return []
    try:
        return cur.fetchall()  # in pipeline mode, this waits for the result
    except psycopg.ProgrammingError:
        if _no_rows(cur):  # pipelined: a statement without rows is found out only now
            return []
        raise


async def _rows_async(cur: psycopg.AsyncCursor[Any]) -> Rows:
    if _no_rows(cur):
        return []
    try:
        return await cur.fetchall()
    except psycopg.ProgrammingError:
        if _no_rows(cur):
            return []
        raise


def columns(names: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """``rows`` as named parameters, a list per column, for statements that take many rows
    at once (``unnest(%(ids)b::uuid[], %(attempts)b::int[])``)."""
    lists: list[list[Any]] = [[] for _ in names]
    for row in rows:
        for values, value in zip(lists, row, strict=True):
            values.append(value)
    return dict(zip(names, lists, strict=True))
