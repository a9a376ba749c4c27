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
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry import trace

from roost_core import outbox, tracing
from roost_core.engine import concurrency, plan, record
from roost_core.engine.state import Conn, Definitions
from roost_core.engine.trigger import Request, trigger
from roost_core.errors import InvalidInputError
from roost_core.topology import Topology
from roost_core.wire import RunAccepted, WorkflowDefinition

logger = logging.getLogger(__name__)
_tracer = tracing.tracer("roost.scheduler")

Group = tuple[str, str, str]  # (tenant, workflow id, version id)


@dataclass
class Created:
    """What creating a batch of accepted runs wrote: the outbox rows to publish after
    commit, the runs it created (a redelivered one is not among them), and the run
    spans to end once they have committed (the span store keeps spans of runs that
    exist)."""

    outbox_rows: list[outbox.OutboxRow] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    spans: list[trace.Span] = field(default_factory=list)


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
    conn: Conn, topology: Topology, definitions: Definitions, accepted: Sequence[RunAccepted]
) -> Created:
    """Create the runs of ``accepted`` inside the caller's transaction, which must commit
    before their messages are acknowledged."""
    created = Created()
    for (tenant, workflow_id, version_id), items in grouped(accepted).items():
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
        done = plan.run(
            conn.cursor(),
            trigger(topology, tenant, workflow_id, version_id, definition, requests),
        )
        created.outbox_rows += done.outbox_rows
        created.run_ids += [str(run_id) for run_id in done.inserted]
    # Readers waiting for these runs to exist (roost_api.waiters) wake at commit.
    plan.run(conn.cursor(), record.notify_final(created.run_ids))
    return created


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
