"""Runs the api accepted without writing them (issue #17).

A client that does not wait for its run's result may ask the api to answer as soon as
the trigger is durable in RabbitMQ (``Prefer: respond-async``): the api checks it, gives
the run a uuid7 id, publishes a :class:`~roost_core.wire.RunAccepted` with a confirm and
answers 202. The scheduler takes those messages with the reports it drains, and creates
their runs here, a batch per workflow version, in its transaction: one trigger's
statements for many runs instead of a transaction per run. The message is acknowledged
only once the runs have committed, so a scheduler that dies redelivers it; the run's id
is its own, so the redelivered message finds the run and creates nothing.

The creation is the api's (roost_core.engine.trigger), and so are its events, its root
tasks' messages and its concurrency strategy: only where and when it runs differ.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry import trace

from roost_core import outbox, tracing
from roost_core.engine import concurrency, plan, record
from roost_core.engine.state import Conn, Definitions
from roost_core.engine.trigger import Request, Triggered, trigger
from roost_core.errors import InvalidInputError
from roost_core.topology import Topology
from roost_core.wire import RunAccepted, WorkflowDefinition

logger = logging.getLogger(__name__)
_tracer = tracing.tracer("roost.scheduler")

Group = tuple[str, str, str]  # (tenant, workflow id, version id)


@dataclass
class Created:
    """What creating a batch of accepted runs wrote: the outbox rows to publish after
    commit, and the run spans to end once they have committed (the span store keeps
    spans of runs that exist)."""

    outbox_rows: list[outbox.OutboxRow] = field(default_factory=list)
    spans: list[trace.Span] = field(default_factory=list)
    # Set when the creation's last statement was only sent (``deferred``): reads its
    # rows. complete() calls it, once the transaction has ended.
    rest: Callable[[], list[outbox.OutboxRow]] | None = None

    def complete(self) -> Created:
        """Read what the creation's last statement wrote (after COMMIT, when deferred)."""
        if self.rest is not None:
            self.outbox_rows += self.rest()
            self.rest = None
        return self


def grouped(accepted: Sequence[RunAccepted]) -> dict[Group, list[RunAccepted]]:
    """The accepted runs by workflow version, each in the order it arrived; a run
    delivered twice in one batch (the api published it again after a lost connection)
    counts once."""
    groups: dict[Group, list[RunAccepted]] = {}
    seen: set[str] = set()
    for item in accepted:
        if item.run_id in seen:
            continue
        seen.add(item.run_id)
        groups.setdefault((item.tenant_id, item.workflow_id, item.version_id), []).append(item)
    return groups


def create_accepted(
    conn: Conn,
    topology: Topology,
    definitions: Definitions,
    accepted: Sequence[RunAccepted],
    *,
    deferred: bool = False,
) -> Created:
    """Create the runs of ``accepted`` inside the caller's transaction, which must commit
    before their messages are acknowledged. ``deferred``: nothing else follows in the
    transaction, so the last statement (the event log and the outbox) may be only sent,
    its rows read by ``complete()`` after COMMIT: on a pipelined connection a batch of
    nothing but triggers then costs one round trip less (issue #17)."""
    created = Created()
    groups = grouped(accepted)
    # Readers waiting for these runs to exist (roost_api.waiters) wake at commit. All
    # of them: one that existed already (a redelivery) wakes a reader for nothing.
    plan.run(conn.cursor(), record.notify_final([i.run_id for i in accepted]))
    for n, ((tenant, workflow_id, version_id), items) in enumerate(groups.items(), 1):
        definition = definitions.find(conn, version_id)
        if definition is None:
            # Versions are never deleted: only a message forged or from another
            # database can name one that is not here. Say so, and create nothing.
            logger.error(
                "accepted runs of an unknown workflow version dropped",
                extra={
                    "action": "accepted_unknown_version",
                    "version_id": version_id,
                    "run_ids": [i.run_id for i in items],
                },
            )
            continue
        requests = []
        for item in _creatable(definition, items):
            run_trace = item.trace
            if tracing.enabled() or run_trace:
                span = _tracer.start_span(
                    f"run {definition.name}",
                    context=tracing.extract(run_trace),
                    attributes={"roost.run_id": item.run_id, "roost.workflow": definition.name},
                )
                run_trace = tracing.carrier(trace.set_span_in_context(span)) or None
                created.spans.append(span)
            requests.append(
                Request(
                    uuid.UUID(item.run_id),
                    item.input,
                    None,
                    item.metadata,
                    run_trace,
                    None,
                    item.desired_labels,
                    item.priority,
                )
            )
        creation = trigger(topology, tenant, workflow_id, version_id, definition, requests)
        # Without a concurrency limit (whose strategy may cancel runs after it), the
        # event log and the outbox are the trigger's last statement.
        if deferred and n == len(groups) and definition.concurrency is None:
            created.rest = _outbox_rows(plan.run_deferred(conn.cursor(), creation))
        else:
            created.outbox_rows += plan.run(conn.cursor(), creation).outbox_rows
    return created


def _outbox_rows(finish: Callable[[], Triggered]) -> Callable[[], list[outbox.OutboxRow]]:
    return lambda: finish().outbox_rows


def _creatable(definition: WorkflowDefinition, items: list[RunAccepted]) -> list[RunAccepted]:
    """The items whose runs can be created. The api checked each trigger as it accepted
    it; one it could not have checked against this definition (a concurrency key its
    input cannot give) would fail the whole batch again at every redelivery, so it is
    dropped with an error instead."""
    if definition.concurrency is None:
        return items
    good = []
    for item in items:
        try:
            concurrency.group_keys(definition, [item.input])
        except InvalidInputError as exc:
            logger.error(
                "an accepted run that cannot be created dropped",
                extra={"action": "accepted_invalid", "run_id": item.run_id, "error": str(exc)},
            )
            continue
        good.append(item)
    return good
