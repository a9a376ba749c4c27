"""Transitions written once for both kinds of connection.

The scheduler and the ratelimiter talk to PostgreSQL through blocking psycopg
connections, the api through async ones. A transition written as a *plan* serves both:
a generator that yields each :class:`Statement` it needs and receives that statement's
rows back, with every decision in between written once. :func:`run` carries a plan out
on a blocking cursor, :func:`run_async` on an async one; plans compose with
``yield from``. (The "sans-I/O" style of h11 and hyper-h2, applied to SQL.)
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Statement:
    """One SQL statement and its parameters; the rows it returns (none without a
    RETURNING or SELECT) are sent back to the plan that yielded it."""

    sql: str
    params: Any = None


Plan = Generator[Statement, Rows, T]


def run(cur: psycopg.Cursor[Any], plan: Plan[T]) -> T:
    """Carry ``plan`` out on a blocking cursor, inside the caller's transaction."""
    try:
        statement = next(plan)
        while True:
            cur.execute(statement.sql, statement.params)
            rows = cur.fetchall() if cur.description is not None else []
            statement = plan.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result


async def run_async(cur: psycopg.AsyncCursor[Any], plan: Plan[T]) -> T:
    """:func:`run` on an async cursor."""
    try:
        statement = next(plan)
        while True:
            await cur.execute(statement.sql, statement.params)
            rows = await cur.fetchall() if cur.description is not None else []
            statement = plan.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result


def columns(names: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """``rows`` as named parameters, a list per column, for statements that take many rows
    at once (``unnest(%(ids)b::uuid[], %(attempts)b::int[])``)."""
    lists: list[list[Any]] = [[] for _ in names]
    for row in rows:
        for values, value in zip(lists, row, strict=True):
            values.append(value)
    return dict(zip(names, lists, strict=True))
