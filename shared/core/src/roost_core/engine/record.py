"""The end of every transaction that changes runs, whoever makes it (the api on
trigger, cancel and replay; the scheduler for everything else): what it decided is
appended to the event log, the units that ended attempts held are freed, rate-limited
task messages wait for admission, and the rest goes to the outbox, to be published once
the transaction commits. Written once, as plans (roost_core.engine.plan)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from roost_core import admission, events, outbox
from roost_core.engine.plan import Plan, Statement
from roost_core.queries import SQL
from roost_core.topology import Topology

# NOTIFY channel of runs that reached a final state, payload the run id: delivered at
# commit, it wakes the api's long-polling readers of those runs (roost_api.waiters).
RUN_FINAL_CHANNEL = "roost_run_final"
_NOTIFY = SQL.notify_run_final


@dataclass(frozen=True)
class Written:
    """What a transaction wrote: the outbox rows to publish after commit, and the
    events it appended (for metrics)."""

    outbox_rows: list[outbox.OutboxRow]
    appended: list[events.Event]


def write(
    topology: Topology,
    batches: list[events.RunEvents],
    messages: Sequence[outbox.OutboxMessage],
    released: admission.Attempts = (),
) -> Plan[Written]:
    """Inside the caller's transaction, which holds every run's lock: free what the
    ``released`` attempts held, hold back the task messages that need admission, append
    the events, and write the outbox — the events' broadcast first, so gateways hear of
    a task queued before a worker can start it."""
    freed = yield from admission.release(topology, released)
    to_send = yield from admission.enqueue(topology, [*messages, *freed])
    appended, rows = yield from events.append(topology, batches, to_send)
    return Written(rows, appended)


def notify_final(run_ids: list[str]) -> Plan[None]:
    """Tell the api's waiters, at commit, that these runs have ended."""
    if run_ids:
        yield Statement(_NOTIFY, {"channel": RUN_FINAL_CHANNEL, "run_ids": run_ids}, rows=False)
