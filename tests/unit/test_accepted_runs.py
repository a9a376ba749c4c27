"""Accepted triggers (issue #17): their ids, and how the scheduler groups a batch of
them (roost_core.run_ids, roost_core.engine.accepted)."""

from __future__ import annotations

import time
import uuid

import pytest
from pydantic import ValidationError

from roost_core.engine.accepted import grouped
from roost_core.run_ids import accepted_at, may_appear, new_run_id
from roost_core.wire import RunAccepted

TENANT, WF, V1, V2 = (str(uuid.uuid4()) for _ in range(4))


def _accepted(version: str, run_id: str | None = None, n: int = 0) -> RunAccepted:
    return RunAccepted(
        tenant_id=TENANT,
        workflow_id=WF,
        version_id=version,
        run_id=run_id or new_run_id(),
        input={"n": n},
    )


def test_an_accepted_run_id_is_a_uuid7_dated_now() -> None:
    before = time.time()
    run_id = new_run_id()
    assert uuid.UUID(run_id).version == 7
    when = accepted_at(run_id)
    assert when is not None and before - 0.002 <= when <= time.time() + 0.002
    assert may_appear(run_id)


def test_only_a_recent_uuid7_may_still_appear() -> None:
    assert accepted_at(str(uuid.uuid4())) is None  # created by the api in PostgreSQL
    assert not may_appear(str(uuid.uuid4()))
    assert not may_appear("not-a-uuid")
    # A uuid7 of an hour ago: whatever was accepted then was created long since.
    hour_ago = int((time.time() - 3600) * 1000)
    old = uuid.UUID(int=(hour_ago << 80) | (7 << 76) | (2 << 62) | 12345)
    assert old.version == 7 and not may_appear(str(old))


def test_a_batch_is_grouped_by_version_in_arrival_order_each_run_once() -> None:
    a, b, c = _accepted(V1, n=1), _accepted(V2, n=2), _accepted(V1, n=3)
    again = _accepted(V1, run_id=a.run_id, n=1)  # published twice after a lost connection

    groups = grouped([a, b, again, c])

    assert list(groups) == [(TENANT, WF, V1), (TENANT, WF, V2)]
    assert [i.input for i in groups[(TENANT, WF, V1)]] == [{"n": 1}, {"n": 3}]
    assert [i.input for i in groups[(TENANT, WF, V2)]] == [{"n": 2}]


def test_an_accepted_message_with_a_malformed_id_is_refused() -> None:
    with pytest.raises(ValidationError, match="run_id"):
        RunAccepted(tenant_id=TENANT, workflow_id=WF, version_id=V1, run_id="run-1")
