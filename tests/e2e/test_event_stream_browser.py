"""A real browser's EventSource against the gateway: headless Chromium (Debian's
``chromium`` package, ``just browser`` installs it) driven by Playwright.

The page is served by the gateway itself (``/health``), so the EventSource is same
origin; it authenticates with a stream token in the URL, as a dashboard would. Without
Chromium the tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
from chromium import needs_chromium

from harness import Process, Stack
from roost_core.events import ALL_TYPES

TIMEOUT_MS = 30_000

# Without Chromium: skipped (before the stack starts), except under CI=true, where the
# browser fixture fails instead.
pytestmark = needs_chromium

# Records every event of every EventSource it opens in window.roost: a list of
# {conn, id, type, state} in arrival order. Named SSE events reach only listeners
# registered for their name, hence one listener per known type.
RECORDER = """
({types}) => {
  window.roost = {events: [], sources: [], errors: []};
  window.roost.open = (url) => {
    const conn = window.roost.sources.length;
    const source = new EventSource(url);
    window.roost.sources.push(source);
    for (const type of types) {
      source.addEventListener(type, (e) => {
        window.roost.events.push({conn, id: e.lastEventId, type: e.type,
                                  dataType: JSON.parse(e.data).type});
      });
    }
    source.onerror = () => window.roost.errors.push({conn, state: source.readyState});
    return conn;
  };
}
"""


def _log(stack: Stack, run_id: str) -> list[tuple[int, str]]:
    rows = stack.sql("SELECT id, type FROM events WHERE run_id = %s ORDER BY seq", run_id)
    return [(int(r[0]), str(r[1])) for r in rows]  # type: ignore[call-overload]


def _stream_token(stack: Stack) -> str:
    minted = httpx.post(
        f"{stack.api_url}/api/v1/stream-tokens",
        headers={"Authorization": f"Bearer {stack.token}"},
        json={"ttl_seconds": 120},
        timeout=10,
    )
    assert minted.status_code == 201, minted.text
    return str(minted.json()["token"])


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    context = browser.new_context()
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    resp = pg.goto(stack.gateway_url + "/health")
    assert resp is not None and resp.ok
    pg.evaluate(RECORDER, {"types": sorted(ALL_TYPES)})
    try:
        yield pg
    finally:
        # Close every EventSource before the page goes, so none reconnects meanwhile.
        pg.evaluate("() => window.roost.sources.forEach((s) => s.close())")
        context.close()


def _received(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate("() => window.roost.events"))


def test_a_browsers_eventsource_gets_the_runs_events_in_order_then_stops(
    stack: Stack, flows: ModuleType, basic_worker: Process, page: Any
) -> None:
    token = _stream_token(stack)
    ref = flows.chatty.run({"chunks": 12, "pause": 0.1}, wait_for_result=False)
    url = f"{stack.gateway_url}/api/v1/runs/{ref.id}/events?token={token}"

    page.evaluate("(url) => window.roost.open(url)", url)
    page.wait_for_function(
        "() => window.roost.events.some((e) => e.type === 'run.succeeded')", timeout=TIMEOUT_MS
    )
    # The gateway ends the stream after the run's last event; the browser reconnects
    # with Last-Event-ID, gets 204, and stops for good (readyState CLOSED).
    page.wait_for_function("() => window.roost.sources[0].readyState === 2", timeout=TIMEOUT_MS)

    got = _received(page)
    log = _log(stack, ref.id)
    assert [(int(e["id"]), e["type"]) for e in got] == log
    assert all(e["type"] == e["dataType"] for e in got)
    assert [t for _, t in log].count("task.stream") == 12
    assert log[0][1] == "run.queued" and log[-1][1] == "run.succeeded"


def test_a_browser_that_reconnects_mid_run_with_after_misses_nothing_and_repeats_nothing(
    stack: Stack, flows: ModuleType, basic_worker: Process, page: Any
) -> None:
    token = _stream_token(stack)
    ref = flows.chatty.run({"chunks": 12, "pause": 0.15}, wait_for_result=False)
    url = f"{stack.gateway_url}/api/v1/runs/{ref.id}/events?token={token}"

    page.evaluate("(url) => window.roost.open(url)", url)
    page.wait_for_function(
        "() => window.roost.events.filter((e) => e.type === 'task.stream').length >= 3",
        timeout=TIMEOUT_MS,
    )
    # A forced disconnect mid-run: close the first EventSource, resume with ?after=.
    last_id = page.evaluate(
        """() => {
          window.roost.sources[0].close();
          const mine = window.roost.events.filter((e) => e.conn === 0);
          return mine[mine.length - 1].id;
        }"""
    )
    page.evaluate("(url) => window.roost.open(url)", f"{url}&after={last_id}")
    page.wait_for_function(
        "() => window.roost.events.some((e) => e.conn === 1 && e.type === 'run.succeeded')",
        timeout=TIMEOUT_MS,
    )
    page.wait_for_function("() => window.roost.sources[1].readyState === 2", timeout=TIMEOUT_MS)

    got = _received(page)
    first = [(int(e["id"]), e["type"]) for e in got if e["conn"] == 0]
    second = [(int(e["id"]), e["type"]) for e in got if e["conn"] == 1]
    log = _log(stack, ref.id)
    assert first and second
    assert first[-1][1] != "run.succeeded" and "task.stream" in [t for _, t in second]
    assert first + second == log  # the union is the log, in order
    ids = [i for i, _ in first + second]
    assert len(ids) == len(set(ids))  # nothing twice
