"""Attempts stranded on a gone worker process (issue #21): placed on its own queue,
which nobody consumes once it stopped or went silent. They are placed again: a
labelled task on another live worker (or it waits for one), a soft-sticky run's on any
worker, and a hard-sticky run's fail, saying their worker is gone
(roost_core.engine.placement)."""

from __future__ import annotations

from typing import NamedTuple

from roost_core.engine.redispatch import redispatch
from roost_core.engine.state import BatchOutcome, Conn, Definitions
from roost_core.queries import SQL
from roost_core.topology import Topology

_STRANDED = SQL.stranded_attempts


class Stranded(NamedTuple):
    task_run_id: str
    attempt: int


def place_stranded(conn: Conn, topology: Topology, definitions: Definitions) -> BatchOutcome:
    """Place again, inside the caller's transaction, the QUEUED attempts whose worker
    process is gone (a batch). A message of theirs still in the gone process's queue is
    deleted with it (the queue expires, roost_core.topology.WORKER_QUEUE_EXPIRES_MS)."""
    stranded = [Stranded(str(r[0]), r[1]) for r in conn.execute(_STRANDED)]
    return redispatch(conn, topology, definitions, stranded)


def any_stranded(conn: Conn) -> bool:
    """Whether any attempt is stranded (one cheap probe: placed attempts are few)."""
    return conn.execute(_STRANDED).fetchone() is not None
