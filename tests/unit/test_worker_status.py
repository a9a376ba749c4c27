"""A worker's status (alive, draining, stopped, dead), its heartbeat on the wire, and the
version it reports."""

from __future__ import annotations

import pytest

import roost
from roost._worker import Worker
from roost_core.statuses import WorkerStatus
from roost_core.wire import WORKER_VERSION_MAX, WorkerHeartbeat


@pytest.mark.parametrize(
    ("reported", "heard_recently", "status"),
    [
        ("alive", True, WorkerStatus.ALIVE),
        ("draining", True, WorkerStatus.DRAINING),
        ("stopped", True, WorkerStatus.STOPPED),
        ("alive", False, WorkerStatus.DEAD),
        ("draining", False, WorkerStatus.DEAD),  # went silent while draining: killed
        ("stopped", False, WorkerStatus.STOPPED),  # said goodbye: silence is expected
    ],
)
def test_a_workers_status_follows_what_it_said_and_whether_it_is_still_heard(
    reported: str, heard_recently: bool, status: WorkerStatus
) -> None:
    assert WorkerStatus.of(reported, heard_recently) is status


_BEAT = {"worker_id": "w@h:1", "name": "w", "workflows": ["a"], "slots": 2, "sent_at": 1.0}


def test_a_heartbeat_from_an_older_worker_means_alive_with_no_version() -> None:
    beat = WorkerHeartbeat.model_validate(_BEAT)
    assert (beat.state, beat.version, beat.sdk_version) == ("alive", None, None)


def test_a_heartbeat_from_a_newer_worker_keeps_what_it_knows_and_ignores_the_rest() -> None:
    beat = WorkerHeartbeat.model_validate(
        {**_BEAT, "state": "draining", "version": "1.2", "sdk_version": "0.1.0", "new": 1}
    )
    assert (beat.state, beat.version, beat.sdk_version) == ("draining", "1.2", "0.1.0")


def test_a_worker_never_reports_itself_dead() -> None:
    with pytest.raises(ValueError, match="state"):
        WorkerHeartbeat.model_validate({**_BEAT, "state": "dead"})


def _workflow(client: roost.Roost) -> roost.Workflow:
    wf = client.workflow("wf")

    @wf.task()
    def only(input: dict, ctx: roost.Context) -> None: ...

    return wf


def test_the_version_given_to_the_worker_wins_over_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROOST_WORKER_VERSION", "from-env")
    client = roost.Roost()
    wf = _workflow(client)
    assert client.worker("w", [wf]).version == "from-env"
    assert client.worker("w", [wf], version="2.0.1").version == "2.0.1"


def test_no_version_anywhere_or_a_blank_setting_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROOST_WORKER_VERSION", raising=False)
    assert roost.Roost().worker("w", [_workflow(roost.Roost())]).version is None
    monkeypatch.setenv("ROOST_WORKER_VERSION", "  ")
    client = roost.Roost()
    assert client.worker("w", [_workflow(client)]).version is None


@pytest.mark.parametrize("bad", ["", "   ", "x" * (WORKER_VERSION_MAX + 1)])
def test_an_unusable_version_is_refused_when_the_worker_is_defined(bad: str) -> None:
    client = roost.Roost()
    with pytest.raises(roost.ConfigurationError, match="version"):
        Worker(client, "w", [_workflow(client)], version=bad)
