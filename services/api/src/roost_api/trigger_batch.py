"""Group commit for single triggers (issue #17): requests for the same workflow version
that arrive while its last transaction is in flight share the next one.

A trigger costs its transaction's round trips and commit whether it creates one run or
fifty; eight clients each calling ``wf.run`` paid eight of them for what ``run_many``
does in one. Here each (tenant, workflow version) has at most one creating transaction
in flight in this process. A request that finds none starts one at once, so a lone
trigger waits for nothing; requests that arrive meanwhile queue and go together in the
next (up to :data:`MAX_BATCH`), as the scheduler drains its reports. Each request still
gets its own answer: its run, its trigger span as the run span's parent, and its own
error if the transaction fails (every request of a failed transaction gets that error,
and none of their runs exists).

What one request's input could make fail is checked before it joins a batch (the input
model, dynamic rate-limit keys), so a batch never fails for one request's sake; what
remains (a missing rate-limit key, the database) is the same for every request in it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from roost_api import metrics as api_metrics
from roost_api import store
from roost_core import metrics, pipelined
from roost_core.outbox import OutboxRelay
from roost_core.topology import Topology
from roost_core.wire import WorkflowDefinition

#: Most runs one shared transaction creates; more wait for the next.
MAX_BATCH = 100


def counted(definition: WorkflowDefinition, result: store.Trigger) -> None:
    """Count what a committed trigger created (and, under a cancelling concurrency
    strategy, ended)."""
    created = sum(1 for c in result.runs if c.summary is not None)
    api_metrics.RUNS_TRIGGERED.labels(definition.name).inc(created)
    if definition.concurrency is not None:
        metrics.count_rows(result.outbox_rows)


@dataclass
class _Waiting:
    request: store.RunRequest
    created: asyncio.Future[store.CreatedRun]


class TriggerBatcher:
    """Creates runs for single-trigger requests, several requests per transaction when
    they arrive together."""

    def __init__(self, pool: Any, topology: Topology, relay: OutboxRelay) -> None:
        self._pool = pool
        self._topology = topology
        self._relay = relay
        self._queued: dict[tuple[str, str], list[_Waiting]] = {}
        self._flushing: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def create(
        self, tenant: str, wv: store.WorkflowVersion, request: store.RunRequest
    ) -> store.CreatedRun:
        """Create one run (or find the one its idempotency key made) once it has
        committed, sharing the transaction with whatever else is queued for ``wv``."""
        key = (tenant, wv.version_id)
        created: asyncio.Future[store.CreatedRun] = asyncio.get_running_loop().create_future()
        self._queued.setdefault(key, []).append(_Waiting(request, created))
        if key not in self._flushing:
            self._flushing.add(key)
            task = asyncio.create_task(self._flush(key, tenant, wv))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Shielded: a client that goes away must not cancel a transaction that holds
        # other clients' runs (its own run is created all the same, as before).
        return await asyncio.shield(created)

    async def _flush(self, key: tuple[str, str], tenant: str, wv: store.WorkflowVersion) -> None:
        try:
            while batch := self._take(key):
                await self._create(tenant, wv, batch)
        finally:
            self._flushing.discard(key)

    def _take(self, key: tuple[str, str]) -> list[_Waiting]:
        queued = self._queued.get(key, [])
        batch, rest = queued[:MAX_BATCH], queued[MAX_BATCH:]
        if rest:
            self._queued[key] = rest
        else:
            self._queued.pop(key, None)
        return batch

    async def _create(self, tenant: str, wv: store.WorkflowVersion, batch: list[_Waiting]) -> None:
        try:
            async with self._pool.connection() as conn:
                # Pipelined: a statement whose rows the plan does not read costs no
                # round trip of its own.
                with store.run_spans_end_after():
                    async with pipelined.atransaction(conn):
                        result = await store.create_runs(
                            conn, self._topology, tenant, wv, [w.request for w in batch]
                        )
        except Exception as exc:  # each request answers with what went wrong
            for waiting in batch:
                if not waiting.created.done():
                    waiting.created.set_exception(exc)
                    # Read here too: a request that went away never reads its own.
                    waiting.created.add_done_callback(_retrieved)
            return
        self._relay.submit(result.outbox_rows)
        counted(wv.definition, result)
        api_metrics.TRIGGER_BATCH.observe(len(batch))
        for waiting, run in zip(batch, result.runs, strict=True):
            if not waiting.created.done():
                waiting.created.set_result(run)

    async def drain(self) -> None:
        """Wait for the transactions in flight (at shutdown, before the relay stops)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _retrieved(future: asyncio.Future[Any]) -> None:
    future.exception()
