"""The end of every engine transaction (roost_core.engine.record.write) appends the events
and writes the outbox in one statement, with the gateways' broadcast built by PostgreSQL
(issue #17). What a gateway receives must be exactly the events as stored, per tenant,
before the task messages; and each outbox row must be the message it says it is."""

from __future__ import annotations

import uuid

import psycopg

from harness import Stack
from roost_core import events
from roost_core.engine import plan, record
from roost_core.events import EventBatch, NewEvent, RunEvents
from roost_core.outbox import OutboxMessage
from roost_core.topology import EVENTS_APPENDED, Topology


def test_events_and_their_broadcasts_are_written_as_stored(stack: Stack) -> None:
    topology = Topology(f"bcast{uuid.uuid4().hex[:6]}")
    tenants = [str(uuid.uuid4()), str(uuid.uuid4())]
    runs = [str(uuid.uuid4()) for _ in range(3)]
    batches = [
        RunEvents(
            tenants[0],
            runs[0],
            "wf-a",
            [
                NewEvent(events.RUN_STARTED, at=1_700_000_000.25),
                NewEvent(events.TASK_SUCCEEDED, "t1", 2, {"output": {"x": [1, "ü"]}}, 1.7e9),
            ],
        ),
        RunEvents(tenants[1], runs[1], "wf-b", [NewEvent(events.TASK_QUEUED, "t", 1)]),
        RunEvents(tenants[0], runs[2], "wf-a", [NewEvent(events.RUN_QUEUED, data=None)]),
    ]
    messages = [
        OutboxMessage("", "roost.q1", b'{"m": 1}', {"h": "1"}),
        OutboxMessage("ex", "key", b"\x00binary"),
    ]
    with psycopg.connect(stack.database_url) as conn:
        try:
            with conn.cursor() as cur:
                # A run with events already: its new ones continue its seq.
                first = plan.run(cur, record.write(topology, batches[:1], []))
                written = plan.run(cur, record.write(topology, batches, messages))
            assert [e.seq for e in first.appended] == [1, 2]
            assert [(e.run_id, e.seq) for e in written.appended] == [
                (runs[0], 3),
                (runs[0], 4),
                (runs[1], 1),
                (runs[2], 1),
            ]
            rows = written.outbox_rows
            # One broadcast per tenant first, then the messages, in order.
            assert [r.message for r in rows[2:]] == messages
            assert [r.message.routing_key for r in rows[:2]] == [EVENTS_APPENDED] * 2
            assert all(not r.message.mandatory for r in rows[:2])
            received = [EventBatch.model_validate_json(r.message.body) for r in rows[:2]]
            assert {b.tenant_id for b in received} == set(tenants)
            got = sorted((e for b in received for e in b.events), key=lambda e: e.id)
            # Every field as appended; the time as the log keeps it (microseconds).
            assert [e.model_dump(exclude={"at"}) for e in got] == [
                e.model_dump(exclude={"at"}) for e in written.appended
            ]
            assert all(abs(g.at - e.at) < 1e-6 for g, e in zip(got, written.appended, strict=True))
            for batch in received:
                assert all(e.tenant_id == batch.tenant_id for e in batch.events)
            stored = conn.execute(
                "SELECT id, exchange, routing_key, body, headers, mandatory FROM outbox"
                " WHERE id = ANY(%s) ORDER BY id",
                ([r.id for r in rows],),
            ).fetchall()
            assert [s[0] for s in stored] == [r.id for r in rows]
            for (_, exchange, key, body, headers, mandatory), row in zip(stored, rows, strict=True):
                m = row.message
                assert (exchange, key, bytes(body), headers or None, mandatory) == (
                    m.exchange,
                    m.routing_key,
                    m.body,
                    m.headers,
                    m.mandatory,
                )
        finally:
            conn.rollback()  # nothing for the stack's sweeper to publish


def test_a_transaction_without_events_writes_only_its_messages(stack: Stack) -> None:
    topology = Topology(f"bcast{uuid.uuid4().hex[:6]}")
    messages = [OutboxMessage("", "roost.q2", b"{}")]
    with psycopg.connect(stack.database_url) as conn:
        try:
            with conn.cursor() as cur:
                written = plan.run(cur, record.write(topology, [], messages))
            assert written.appended == []
            assert [r.message for r in written.outbox_rows] == messages
        finally:
            conn.rollback()
