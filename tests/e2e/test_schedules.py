"""Schedules (issue #19) on a real stack with two scheduler replicas: crons fire each
time exactly once, scheduled runs fire once, missed times follow catch_up, and the HTTP
surface refuses what it cannot keep.

The workflows here are served by no worker: a fired run stays QUEUED, which is all these
tests look at (the runs a schedule made, and the fire times they carry)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from harness import Process, Stack

GRACE = 1.0  # ROOST_CRON_MISFIRE_GRACE_SECONDS of this stack


@pytest.fixture(scope="module")
def sched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own, with two scheduler replicas and a short misfire grace."""
    s = Stack(
        tmp_path_factory.mktemp("schedules"),
        extra_env={"ROOST_CRON_MISFIRE_GRACE_SECONDS": str(GRACE)},
    )
    try:
        s.start(schedulers=2)
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def api(sched: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sched.api_url, timeout=30, headers={"Authorization": f"Bearer {sched.token}"}
    ) as client:
        yield client


def register(api: httpx.Client, **extra: Any) -> str:
    name = f"sched-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "tasks": [{"name": "a", "parents": []}], **extra}
    r = api.post("/api/v1/workflows", json=body)
    assert r.status_code == 201, r.text
    return name


def cron_runs(stack: Stack, cron_id: str) -> list[tuple[datetime, str]]:
    """(fire time, run id) of every run the cron started, from the runs' own metadata."""
    rows = stack.sql(
        "SELECT metadata->>'roost.fire_at', id FROM runs WHERE metadata->>'roost.cron_id' = %s"
        " ORDER BY 1",
        cron_id,
    )
    return [(datetime.fromisoformat(str(at)), str(rid)) for at, rid in rows]


def wait_consuming(procs: list[Process]) -> None:
    """Until each scheduler process has logged that it consumes (it fires from then)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all("scheduler consuming" in p.log.read_text(errors="replace") for p in procs):
            return
        time.sleep(0.1)
    raise AssertionError("schedulers did not start:\n" + "\n".join(p.tail() for p in procs))


def db_now(stack: Stack) -> datetime:
    ((now,),) = stack.sql("SELECT clock_timestamp()")
    assert isinstance(now, datetime)
    return now


def test_a_cron_every_second_fires_each_second_once_with_two_schedulers(
    sched: Stack, api: httpx.Client
) -> None:
    name = register(api)
    r = api.post(
        "/api/v1/crons",
        json={
            "workflow": name,
            "name": "every-second",
            "expression": "* * * * * *",
            "input": {"n": 1},
            "metadata": {"team": "infra"},
        },
    )
    assert r.status_code == 201, r.text
    cron = r.json()
    assert cron["declared"] is False and cron["paused"] is False
    time.sleep(6)
    api.post(f"/api/v1/crons/{cron['id']}/pause").raise_for_status()
    time.sleep(1)  # a fire in flight commits

    fired = cron_runs(sched, cron["id"])
    times = [at for at, _ in fired]
    assert len(times) >= 4, fired
    assert len(set(times)) == len(times), f"a fire time fired twice: {times}"
    # No gap: every second from the first fire to the last.
    assert times == [times[0] + timedelta(seconds=i) for i in range(len(times))]
    first = datetime.fromisoformat(cron["next_fire_at"])
    assert times[0] == first
    # Each run is the workflow's, with the cron's input and metadata.
    run = api.get(f"/api/v1/runs/{fired[0][1]}").json()
    assert run["workflow"] == name and run["input"] == {"n": 1}
    assert run["metadata"]["team"] == "infra" and run["metadata"]["roost.cron"] == "every-second"
    assert run["trigger"] == {
        "kind": "cron",
        "cron_id": cron["id"],
        "cron": "every-second",
        "fire_at": times[0].isoformat(),
    }
    # Both replicas were there: each logged fires or skipped locked rows; the runs say
    # what matters: one per second. The cron shows its latest runs.
    got = api.get(f"/api/v1/crons/{cron['id']}").json()
    assert got["paused"] is True
    assert [x["run_id"] for x in got["recent_runs"]][:3] == [rid for _, rid in fired[::-1][:3]]
    assert datetime.fromisoformat(got["last_fire_at"]) == times[-1]

    # Paused, it fires no more; resumed, it goes on from now.
    time.sleep(2)
    assert len(cron_runs(sched, cron["id"])) == len(fired)
    resumed = api.post(f"/api/v1/crons/{cron['id']}/resume").json()
    assert datetime.fromisoformat(resumed["next_fire_at"]) > times[-1] + timedelta(seconds=2)
    time.sleep(2)
    assert len(cron_runs(sched, cron["id"])) > len(fired)
    assert api.delete(f"/api/v1/crons/{cron['id']}").status_code == 204
    assert api.get(f"/api/v1/crons/{cron['id']}").status_code == 404
    # Its runs stay.
    assert api.get(f"/api/v1/runs/{fired[0][1]}").status_code == 200


def test_a_scheduler_killed_at_the_fire_instant_makes_no_duplicate_and_no_gap(
    sched: Stack, api: httpx.Client
) -> None:
    name = register(api)
    cron = api.post(
        "/api/v1/crons",
        json={"workflow": name, "name": "kill", "expression": "* * * * * *", "catch_up": "all"},
    ).json()
    time.sleep(1.5)
    victims = [p for p in sched.processes if p.name.startswith("scheduler")]
    for killed, victim in enumerate(victims, 1):
        # Just after a fire time, when a replica is inside its fire transaction.
        now = db_now(sched)
        time.sleep(1 - now.microsecond / 1e6 + 0.05)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.popen.wait(5)
        sched.processes.remove(victim)
        again = sched.spawn(victim.name, *victim.args, log_name=f"{victim.name}.killed{killed}")
        time.sleep(1.5)  # the other replica fires meanwhile
        wait_consuming([again])
    time.sleep(1.5)
    api.post(f"/api/v1/crons/{cron['id']}/pause").raise_for_status()
    time.sleep(1)

    times = [at for at, _ in cron_runs(sched, cron["id"])]
    assert len(set(times)) == len(times), f"a fire time fired twice: {times}"
    assert times == [times[0] + timedelta(seconds=i) for i in range(len(times))], times
    assert times[0] == datetime.fromisoformat(cron["next_fire_at"])
    assert len(times) >= 6


def test_a_scheduled_run_fires_once_and_can_be_moved_or_cancelled_before(
    sched: Stack, api: httpx.Client
) -> None:
    name = register(api)
    soon = api.post(
        "/api/v1/scheduled",
        json={"workflow": name, "delay_seconds": 1, "input": {"k": "soon"}},
    )
    assert soon.status_code == 201, soon.text
    assert soon.json()["status"] == "SCHEDULED" and soon.json()["run_id"] is None
    later = api.post(
        "/api/v1/scheduled",
        json={"workflow": name, "at": (db_now(sched) + timedelta(hours=1)).isoformat()},
    ).json()
    dropped = api.post(
        "/api/v1/scheduled", json={"workflow": name, "delay_seconds": 2, "input": {"k": "x"}}
    ).json()
    assert api.delete(f"/api/v1/scheduled/{dropped['id']}").json()["status"] == "CANCELLED"
    # Moved from an hour away to one second away.
    moved = api.patch(f"/api/v1/scheduled/{later['id']}", json={"delay_seconds": 1})
    assert moved.status_code == 200, moved.text

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        listed = api.get("/api/v1/scheduled", params={"workflow": name}).json()["scheduled"]
        if all(s["status"] != "SCHEDULED" for s in listed):
            break
        time.sleep(0.2)
    time.sleep(3)  # the cancelled one's time passes too
    by_id = {
        s["id"]: s
        for s in api.get("/api/v1/scheduled", params={"workflow": name}).json()["scheduled"]
    }
    assert by_id[soon.json()["id"]]["status"] == "FIRED"
    assert by_id[later["id"]]["status"] == "FIRED"
    assert by_id[dropped["id"]]["status"] == "CANCELLED" and by_id[dropped["id"]]["run_id"] is None
    rows = sched.sql(
        "SELECT metadata->>'roost.scheduled_id', id, input FROM runs WHERE workflow_name = %s",
        name,
    )
    assert sorted(str(r[0]) for r in rows) == sorted([soon.json()["id"], later["id"]])
    run_of = {str(r[0]): str(r[1]) for r in rows}
    assert by_id[soon.json()["id"]]["run_id"] == run_of[soon.json()["id"]]
    run = api.get(f"/api/v1/runs/{run_of[soon.json()['id']]}").json()
    assert run["trigger"] == {"kind": "scheduled", "scheduled_id": soon.json()["id"]}
    # Fired: no second thoughts.
    again = api.delete(f"/api/v1/scheduled/{soon.json()['id']}")
    assert again.status_code == 409 and run_of[soon.json()["id"]] in again.text
    assert (
        api.patch(f"/api/v1/scheduled/{dropped['id']}", json={"delay_seconds": 1}).status_code
        == 409
    )


def test_missed_times_follow_catch_up_when_every_scheduler_was_down(
    sched: Stack, api: httpx.Client
) -> None:
    name = register(api)
    schedulers = [p for p in sched.processes if p.name.startswith("scheduler")]
    for proc in schedulers:
        sched.stop_one(proc)
    try:
        made = {}
        for policy in ("latest", "all", "none"):
            r = api.post(
                "/api/v1/crons",
                json={
                    "workflow": name,
                    "name": policy,
                    "expression": "* * * * * *",
                    "catch_up": policy,
                },
            )
            assert r.status_code == 201, r.text
            made[policy] = r.json()
        due = api.post("/api/v1/scheduled", json={"workflow": name, "delay_seconds": 0.5}).json()
        time.sleep(4.5)  # four or more fire times pass with no scheduler
        restarted = db_now(sched)
    finally:
        again = [
            sched.spawn(proc.name, *proc.args, log_name=f"{proc.name}.restarted")
            for proc in schedulers
        ]
        wait_consuming(again)
    time.sleep(3)
    for cron in made.values():
        api.post(f"/api/v1/crons/{cron['id']}/pause").raise_for_status()
    time.sleep(1)

    first = datetime.fromisoformat(made["all"]["next_fire_at"])
    every = [at for at, _ in cron_runs(sched, made["all"]["id"])]
    # "all": every time, missed or not, once, in order.
    assert every[0] <= first + timedelta(seconds=1), every
    assert every == [every[0] + timedelta(seconds=i) for i in range(len(every))]
    assert every[-1] > restarted
    latest = [at for at, _ in cron_runs(sched, made["latest"]["id"])]
    none = [at for at, _ in cron_runs(sched, made["none"]["id"])]
    # "latest": of the times missed while down, only the last one fired; then each
    # time on time.
    missed_latest = [at for at in latest if at < restarted - timedelta(seconds=GRACE)]
    assert len(missed_latest) <= 1, latest
    assert latest[0] >= first + timedelta(seconds=3), latest
    assert latest == [latest[0] + timedelta(seconds=i) for i in range(len(latest))] or (
        len(missed_latest) == 1
        and latest[1:] == [latest[1] + timedelta(seconds=i) for i in range(len(latest) - 1)]
    )
    # "none": nothing from the outage.
    assert none and none[0] > restarted - timedelta(seconds=GRACE), none
    assert len(none) < len(every) - 3
    # The scheduled run due during the outage fired once, on recovery.
    fired = api.get(f"/api/v1/scheduled/{due['id']}").json()
    assert fired["status"] == "FIRED"
    rows = sched.sql(
        "SELECT count(*) FROM runs WHERE metadata->>'roost.scheduled_id' = %s", due["id"]
    )
    assert rows[0][0] == 1


def test_a_schedule_that_cannot_fire_is_set_aside_and_holds_up_no_other(
    sched: Stack, api: httpx.Client
) -> None:
    poison, healthy = register(api), register(api)
    bad = api.post("/api/v1/scheduled", json={"workflow": poison, "delay_seconds": 1}).json()
    good = api.post("/api/v1/scheduled", json={"workflow": healthy, "delay_seconds": 1}).json()
    bad_cron = api.post(
        "/api/v1/crons", json={"workflow": poison, "name": "p", "expression": "* * * * * *"}
    ).json()
    good_cron = api.post(
        "/api/v1/crons", json={"workflow": healthy, "name": "h", "expression": "* * * * * *"}
    ).json()
    # The newest version groups runs by input.repo, which the schedules' input lacks.
    body = {
        "name": poison,
        "tasks": [{"name": "a", "parents": []}],
        "concurrency": {"expression": "input.repo", "max_runs": 1},
    }
    assert api.post("/api/v1/workflows", json=body).status_code == 201
    time.sleep(4)
    for cron in (bad_cron, good_cron):
        api.post(f"/api/v1/crons/{cron['id']}/pause").raise_for_status()

    failed = api.get(f"/api/v1/scheduled/{bad['id']}").json()
    assert failed["status"] == "FAILED" and "input.repo" in failed["error"], failed
    assert api.get(f"/api/v1/scheduled/{good['id']}").json()["status"] == "FIRED"
    assert len(cron_runs(sched, good_cron["id"])) >= 2
    assert cron_runs(sched, bad_cron["id"]) == []
    # The cron was skipped past its failed times, not stuck on them.
    assert datetime.fromisoformat(
        api.get(f"/api/v1/crons/{bad_cron['id']}").json()["next_fire_at"]
    ) > db_now(sched) - timedelta(seconds=3)
    again = api.delete(f"/api/v1/scheduled/{bad['id']}")
    assert again.status_code == 409 and "failed to fire" in again.text
    # A new schedule of what the newest version refuses is refused now, naming why.
    refused = api.post("/api/v1/scheduled", json={"workflow": poison, "delay_seconds": 1})
    assert refused.status_code == 422 and "input.repo" in refused.text


def test_declared_crons_follow_the_newest_version(sched: Stack, api: httpx.Client) -> None:
    name = register(api, on_crons=["0 3 * * *", "@hourly"], cron_input={"scope": "all"})
    listed = api.get("/api/v1/crons", params={"workflow": name}).json()["crons"]
    assert sorted(c["expression"] for c in listed) == ["0 * * * *", "0 3 * * *"]
    assert all(c["declared"] and c["input"] == {"scope": "all"} for c in listed)
    hourly = next(c for c in listed if c["expression"] == "0 * * * *")
    # A declared cron is deleted by its workflow, not by hand (it can be paused).
    assert api.delete(f"/api/v1/crons/{hourly['id']}").status_code == 409
    # A new version keeps the hourly cron as it was, drops the 03:00 one.
    body = {"name": name, "tasks": [{"name": "a", "parents": []}], "on_crons": ["@hourly"]}
    assert api.post("/api/v1/workflows", json=body).status_code == 201
    listed = api.get("/api/v1/crons", params={"workflow": name}).json()["crons"]
    assert [(c["id"], c["next_fire_at"]) for c in listed] == [
        (hourly["id"], hourly["next_fire_at"])
    ]
    assert listed[0]["input"] == {}
    bad = {**body, "on_crons": ["0 25 * * *"]}
    r = api.post("/api/v1/workflows", json=bad)
    assert r.status_code == 422 and "bad hour" in r.text and "0 25 * * *" in r.text


@pytest.mark.parametrize(
    "change, status, names",
    [
        ({"expression": "61 * * * *"}, 400, ["61 * * * *", "bad minute"]),
        ({"expression": "@fortnightly"}, 400, ["@fortnightly"]),
        ({"timezone": "Mars/Olympus"}, 400, ["Mars/Olympus"]),
        ({"catch_up": "some"}, 400, ["'some'", "catch_up"]),
        ({"workflow": "no-such-workflow"}, 404, ["no-such-workflow"]),
        ({"metadata": {"roost.cron": "x"}}, 400, ["roost.cron"]),
    ],
)
def test_a_bad_cron_is_refused_naming_what_is_wrong(
    sched: Stack, api: httpx.Client, change: dict[str, Any], status: int, names: list[str]
) -> None:
    name = register(api)
    body = {"workflow": name, "name": "c", "expression": "0 * * * *", **change}
    r = api.post("/api/v1/crons", json=body)
    assert r.status_code == status, r.text
    for text in names:
        assert text in r.json()["error"]["message"], r.text
    assert api.get("/api/v1/crons", params={"workflow": name}).json()["crons"] == []


def test_schedules_refuse_duplicates_and_unknown_ids(sched: Stack, api: httpx.Client) -> None:
    name = register(api)
    body = {
        "workflow": name,
        "name": "nightly",
        "expression": "0 3 * * *",
        "timezone": "Europe/Berlin",
    }
    assert api.post("/api/v1/crons", json=body).status_code == 201
    dup = api.post("/api/v1/crons", json=body)
    assert dup.status_code == 409 and "nightly" in dup.text
    assert api.get(f"/api/v1/crons/{uuid.uuid4()}").status_code == 404
    assert api.get("/api/v1/scheduled/not-an-id").status_code == 404
    both = api.post(
        "/api/v1/scheduled",
        json={"workflow": name, "delay_seconds": 5, "at": "2030-01-01T00:00:00Z"},
    )
    assert both.status_code == 400 and "exactly one" in both.text
    naive = api.post("/api/v1/scheduled", json={"workflow": name, "at": "2030-01-01T00:00:00"})
    assert naive.status_code == 400 and "at" in naive.text
