"""The SDK's ``aio_`` twins, as an asyncio application (a FastAPI endpoint, say) uses
them: trigger, wait, stream, read, list, cancel, push events, set rate limits and read
workers without ever blocking the event loop (asyncio's debug mode reports any callback
slower than its threshold), and concurrent triggers ride the api's group commit (issue
#17)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from types import ModuleType

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import Process, Stack
from roost import RunTimeoutError

# A blocking call here would be an HTTP request or a long poll (0.5 s below). Under
# 0.25 s, a loaded 2-core CI machine's own stalls (scheduling, GC, a thread starting)
# show up as slow callbacks too: one did at 0.05 s.
SLOW_CALLBACK_SECONDS = 0.25
CONCURRENT = 10


def _accept_transactions(stack: Stack) -> float:
    text = httpx.get(f"{stack.api_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "roost_accept_batch_size_count":
                return sample.value
    return 0.0


def test_async_calls_never_block_the_event_loop(
    stack: Stack, flows: ModuleType, basic_worker: Process, caplog: pytest.LogCaptureFixture
) -> None:
    roost = flows.roost
    ids = [f"bd-aio-{uuid.uuid4().hex[:6]}-{i}" for i in range(CONCURRENT)]

    async def application() -> None:
        asyncio.get_running_loop().slow_callback_duration = SLOW_CALLBACK_SECONDS
        await flows.chain.aio_register()
        # Warm the client's connection pool first: triggers on fresh connections arrive
        # one TCP handshake apart, and on a loaded machine each can commit alone.
        await asyncio.gather(*(roost.workflows.aio_list() for _ in ids))
        before = await asyncio.to_thread(_accept_transactions, stack)
        refs = await asyncio.gather(
            *(flows.chain.aio_run({"task_id": i}, wait_for_result=False) for i in ids)
        )
        after = await asyncio.to_thread(_accept_transactions, stack)
        # Every trigger was accepted (ROOST_RESPOND_ASYNC, the default: they do not wait),
        # through the api's shared AMQP transactions. Whether these ten shared one
        # depends on when each request reached the api (under CI load they may arrive
        # apart): sharing itself is tested by tests/e2e/test_accepted_triggers.py.
        assert 1 <= after - before <= CONCURRENT
        results = await asyncio.gather(*(ref.aio_result(timeout=60) for ref in refs))
        assert [r["commit"]["task_id"] for r in results] == ids
        assert all(r["commit"]["committed"] is True for r in results)

        # The run's events, replayed from its start, end with it.
        types = [event.type async for event in refs[0].aio_stream()]
        assert types[0] == "run.queued" and types[-1] == "run.succeeded"
        assert types.count("task.succeeded") == 4  # the chain's four tasks

        one = await roost.runs.aio_get(refs[0].id)
        assert one.status == "SUCCEEDED" and one.task("commit").output is not None
        page, _ = await roost.runs.aio_list(workflow="t-chain", limit=100)
        assert {r.id for r in refs} <= {r.id for r in page}

        logs, _ = await roost.runs.aio_logs(refs[0].id)
        assert isinstance(logs, list)
        run_trace = await roost.runs.aio_trace(refs[0].id)
        assert run_trace.run_id == refs[0].id and run_trace.status == "SUCCEEDED"
        assert "t-chain" in {w["name"] for w in await roost.workflows.aio_list()}
        definition = await roost.workflows.aio_get("t-chain")
        assert [t["name"] for t in definition["tasks"]][0] == "check_deps"

        waited = await flows.chain.aio_run({"task_id": "bd-aio-wait"}, timeout=60)
        assert waited["commit"]["task_id"] == "bd-aio-wait"

        # A run nobody serves: cancelled while queued, then replayed.
        lonely = roost.workflow(f"aio-lonely-{uuid.uuid4().hex[:6]}")

        @lonely.task()
        def only(input: dict[str, object], ctx: object) -> dict[str, object]:
            return {}

        queued = await lonely.aio_run({}, wait_for_result=False)
        # Waiting for it long-polls the api; meanwhile the loop runs everything else.
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        with pytest.raises(RunTimeoutError):
            await queued.aio_result(timeout=0.5)
        ticker.cancel()
        assert ticks >= 10, f"the loop ran {ticks} times in 0.5 s"
        cancelled = await roost.runs.aio_cancel(queued.id)
        assert cancelled.status == "CANCELLED"
        replayed = await roost.runs.aio_replay(queued.id)
        assert not replayed.status.is_final
        await roost.runs.aio_cancel(queued.id)

        pushed = await roost.events.aio_push(f"aio:{uuid.uuid4().hex[:6]}", {"n": 1})
        assert pushed.key.startswith("aio:")
        key = f"aio-many:{uuid.uuid4().hex[:6]}"
        many = await roost.events.aio_push_many(
            [{"key": key, "data": {"n": n}} for n in range(3)], chunk_size=2
        )
        assert [e.data for e in many] == [{"n": 0}, {"n": 1}, {"n": 2}]
        listed, _ = await roost.events.aio_list(key)
        assert {e.id for e in listed} == {e.id for e in many}
        assert (await roost.events.aio_get(many[0].id)).data == {"n": 0}

        limit_key = f"aio-limit-{uuid.uuid4().hex[:6]}"
        made = await roost.rate_limits.aio_put(limit_key, 3, "minute")
        assert (made.limit, made.kind) == (3, "window")
        assert (await roost.rate_limits.aio_get(limit_key)).units_left == 3
        assert limit_key in {r.key for r in await roost.rate_limits.aio_list()}

        ran_on = one.task("commit").attempts[-1].worker_id
        assert ran_on in {w["id"] for w in await roost.workers.aio_list()}
        worker = await roost.workers.aio_get(ran_on)
        assert worker["status"] == "alive" and "t-chain" in worker["workflows"]
        await roost.aclose()

    # A fresh connection: the first call of an application makes its clients, which
    # must not cost the loop their TLS set-up either.
    roost.close()
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        asyncio.run(application(), debug=True)
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert not slow, slow
