"""A transaction sent as plain BEGIN and COMMIT through psycopg's pipeline mode
(issue #17): its round trips are the reads it needs, plus one.

``with conn.pipeline(), conn.transaction():`` looks pipelined, but psycopg syncs with
the server when the transaction block opens, again before it commits, at the COMMIT
and at the pipeline's end: a scheduler batch that reads three results cost seven round
trips (counted with strace). Here BEGIN goes out with the first statement and the
COMMIT with the last, and the one Sync that psycopg sends when the pipeline closes
collects both: that batch costs three, one per read and one for the COMMIT. A statement
whose rows are read after the block (a plan's ``deferrable`` last statement,
roost_core.engine.plan.run_deferred) is answered by the same Sync as the COMMIT.

Only for autocommit connections (every Roost connection is). If anything fails
inside, the transaction is rolled back and the error raised; nothing was committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus


@contextlib.contextmanager
def transaction(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """BEGIN … COMMIT on ``conn`` (autocommit) in pipeline mode."""
    try:
        with conn.pipeline():
            conn.execute("BEGIN")
            yield
            conn.execute("COMMIT")
    except BaseException:
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
        raise


@contextlib.asynccontextmanager
async def atransaction(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    """:func:`transaction` on an async connection."""
    try:
        async with conn.pipeline():
            await conn.execute("BEGIN")
            yield
            await conn.execute("COMMIT")
    except BaseException:
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                await conn.execute("ROLLBACK")
        raise
