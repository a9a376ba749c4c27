"""The end of an engine transaction: settle the runs it finished, then write what it
decided (roost_core.engine.record) and say what it produced."""

from __future__ import annotations

from collections.abc import Callable

from roost_core import events, outbox, tracing
from roost_core.engine import plan, record
from roost_core.engine.places import give_back_places
from roost_core.engine.settle import settle
from roost_core.engine.state import BatchOutcome, Conn, Definitions, RunState
from roost_core.engine.trace import trace_decisions
from roost_core.topology import Topology


def write_batch(
    conn: Conn, topology: Topology, runs: dict[str, RunState], messages: list[outbox.OutboxMessage]
) -> tuple[list[outbox.OutboxRow], list[events.Event]]:
    """Append the batch's events, free what its ended attempts held, and write its
    outbox (roost_core.engine.record.write)."""
    written = write_batch_deferred(conn, topology, runs, messages)()
    return written.outbox_rows, written.appended


def write_batch_deferred(
    conn: Conn, topology: Topology, runs: dict[str, RunState], messages: list[outbox.OutboxMessage]
) -> Callable[[], record.Written]:
    """:func:`write_batch`, its last statement's rows read by the function it returns:
    call it after COMMIT (plan.run_deferred)."""
    give_back_places(conn, runs.values())  # runs whose every task left now waits
    if tracing.enabled():
        trace_decisions(runs)
    return plan.run_deferred(
        conn.cursor(),
        record.write(
            topology,
            [
                events.RunEvents(r.tenant_id, r.id, r.workflow, r.events)
                for r in runs.values()
                if r.events
            ],
            messages,
            # Rate-limited attempts that ended free their units.
            [a for r in runs.values() for a in r.released],
        ),
    )


def close_batch(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    live: dict[str, RunState],
    out: list[outbox.OutboxMessage],
    applied: int,
) -> BatchOutcome:
    """Settle the runs an engine-side batch touched and write its messages."""
    finished = settle(conn, topology, definitions, list(live.values()), out)
    rows, appended = write_batch(conn, topology, live, out)
    return BatchOutcome(rows, finished, applied, 0, appended)
