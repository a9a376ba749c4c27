"""Schedules (issue #19) from Python and the command line, on the session's real stack:
``roost.crons``, ``roost.scheduled``, ``wf.schedule`` (sync and ``aio_``), ``on_crons``
declared with a workflow, and ``roost crons`` / ``roost scheduled`` / ``roost run --in``.

No worker serves these workflows: a fired run stays QUEUED, which is all these tests
look at. The HTTP surface itself is tests/e2e/test_schedules.py's.

The command line runs as a user runs it (a subprocess) where its exit code and streams
matter; elsewhere it runs in this process (typer's CliRunner, the same code against the
same stack), as each `python -m roost.cli` spends seconds importing."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

import roost._targets
from harness import REPO, Stack
from roost import (
    BadRequestError,
    ConflictError,
    Context,
    Cron,
    InvalidDefinitionError,
    NotFoundError,
    Roost,
    ScheduledRun,
    Workflow,
)

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def define(client: Roost, **options: Any) -> Workflow:
    """A one-task workflow with a fresh name (not registered yet)."""
    wf = client.workflow(f"t-sched-{uuid.uuid4().hex[:8]}", **options)

    @wf.task()
    def only(input: Any, ctx: Context) -> None: ...

    return wf


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """``roost ARGS`` as a user runs it, against the stack; never raises."""
    return subprocess.run(
        [sys.executable, "-m", "roost.cli", *args],
        env=stack.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def invoke(monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """``roost ARGS`` in this process (the client from the ROOST_* the flows fixture
    set), printing at 200 columns so that a table's cells are whole."""
    from roost.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner().invoke(app, list(args))


def flat(text: str) -> str:
    """``text`` with every run of whitespace made one space (Rich wraps at 80 columns)."""
    return " ".join(text.split())


def wait_fired(client: Roost, scheduled_id: str, timeout: float = 20) -> ScheduledRun:
    deadline = time.monotonic() + timeout
    while True:
        found = client.scheduled.get(scheduled_id)
        if found.status != "SCHEDULED" or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_crons_are_created_listed_read_paused_resumed_and_deleted(
    stack: Stack, flows: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    client: Roost = flows.roost
    wf = define(client)  # crons.create registers it, as wf.run would
    cron = client.crons.create(
        wf,
        "nightly",
        "0 3 * * *",
        input={"n": 1},
        timezone="Europe/Berlin",
        metadata={"team": "infra"},
        catch_up="all",
    )
    assert (cron.workflow, cron.name, cron.expression, cron.timezone) == (
        wf.name,
        "nightly",
        "0 3 * * *",
        "Europe/Berlin",
    )
    assert cron.input == {"n": 1} and cron.metadata == {"team": "infra"}
    assert cron.catch_up == "all" and not cron.declared and not cron.paused
    # 03:00 in Berlin is 01:00 or 02:00 UTC.
    assert cron.next_fire_at > datetime.now(UTC) and cron.next_fire_at.hour in (1, 2)
    hourly = client.crons.create(wf.name, "hourly", "@hourly", paused=True)
    assert hourly.expression == "0 * * * *" and hourly.paused

    # A page of two makes the SDK follow next_cursor (the api's pages hold 500).
    monkeypatch.setattr(roost._targets, "PAGE", 2)
    extra = [client.crons.create(wf, f"c{i}", f"{i} 4 * * *").id for i in range(3)]
    assert [c.id for c in client.crons.list(wf)] == [cron.id, hourly.id, *extra]
    assert cron.id in {c.id for c in client.crons.list()}
    monkeypatch.undo()

    got = client.crons.get(cron.id)
    assert got.id == cron.id and got.recent_runs == [] and got.metadata == {"team": "infra"}
    assert client.crons.pause(cron.id).paused is True
    assert client.crons.get(cron.id).paused is True
    resumed = client.crons.resume(cron.id)
    assert resumed.paused is False and resumed.next_fire_at > datetime.now(UTC)

    with pytest.raises(ConflictError, match="nightly"):
        client.crons.create(wf, "nightly", "0 5 * * *")
    client.crons.delete(cron.id)
    with pytest.raises(NotFoundError, match=cron.id):
        client.crons.get(cron.id)
    with pytest.raises(NotFoundError):
        client.crons.delete(cron.id)
    assert cron.id not in {c.id for c in client.crons.list(wf)}


def test_a_run_scheduled_with_a_delay_fires_once_and_a_cancelled_one_never(
    stack: Stack, flows: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    client: Roost = flows.roost
    wf = define(client)
    soon = wf.schedule({"k": "soon"}, delay="1s", metadata={"team": "infra"})
    dropped = wf.schedule({"k": "dropped"}, delay=timedelta(seconds=2))
    later = wf.schedule(at=datetime.now(UTC) + timedelta(hours=1))
    assert soon.status == "SCHEDULED" and soon.run_id is None and soon.workflow == wf.name
    assert timedelta(seconds=0.5) < soon.trigger_at - soon.created_at < timedelta(seconds=1.5)
    assert client.scheduled.cancel(dropped.id).status == "CANCELLED"

    # Moved, to a time given with its zone; still not fired.
    moved_to = datetime(2030, 1, 1, 4, tzinfo=UTC)
    moved = client.scheduled.reschedule(later.id, at=moved_to)
    assert moved.trigger_at == moved_to and moved.status == "SCHEDULED"

    fired = wait_fired(client, soon.id)
    assert fired.status == "FIRED" and fired.run_id is not None and fired.fired_at is not None
    run = client.runs.get(fired.run_id)
    assert run.workflow == wf.name and run.input == {"k": "soon"}
    assert run.metadata["roost.scheduled_id"] == soon.id and run.metadata["team"] == "infra"

    time.sleep(max(0.0, (dropped.trigger_at - datetime.now(UTC)).total_seconds()) + 1.0)
    monkeypatch.setattr(roost._targets, "PAGE", 2)  # next_cursor followed, as for crons
    mine = client.scheduled.list(wf)
    assert [s.id for s in mine] == [soon.id, dropped.id, later.id]  # soonest first
    monkeypatch.undo()
    assert [s.id for s in client.scheduled.list(wf, status="CANCELLED")] == [dropped.id]
    assert client.scheduled.get(dropped.id).run_id is None
    started, _ = client.runs.list(workflow=wf.name, limit=10)
    assert [r.id for r in started] == [fired.run_id]  # once, and the cancelled one never
    # Fired: it cannot be cancelled or moved, and the error names its run.
    with pytest.raises(ConflictError, match=fired.run_id):
        client.scheduled.cancel(soon.id)
    with pytest.raises(ConflictError, match="cancelled"):
        client.scheduled.reschedule(dropped.id, delay="1h")
    client.scheduled.cancel(later.id)


def test_schedule_refuses_what_it_cannot_send_before_sending_it(flows: ModuleType) -> None:
    client: Roost = flows.roost
    wf = define(client)
    with pytest.raises(BadRequestError, match="exactly one of at= .* or delay="):
        wf.schedule()
    with pytest.raises(BadRequestError, match="exactly one"):
        wf.schedule(at=datetime.now(UTC), delay="1m")
    with pytest.raises(ValueError, match="has no time zone: give an aware datetime"):
        wf.schedule(at=datetime(2030, 1, 1, 3))
    with pytest.raises(ValueError, match="delay='soon' is not a duration"):
        wf.schedule(delay="soon")
    with pytest.raises(NotFoundError):  # nothing was registered, nothing scheduled
        client.workflows.get(wf.name)


def test_the_aio_twins_make_read_move_and_cancel_schedules(stack: Stack, flows: ModuleType) -> None:
    async def application() -> None:
        client = Roost()
        wf = define(client)
        cron = await client.crons.aio_create(wf, "aio", "*/5 * * * *", input={"a": 1})
        assert [c.id for c in await client.crons.aio_list(wf.name)] == [cron.id]
        assert (await client.crons.aio_pause(cron.id)).paused
        assert not (await client.crons.aio_resume(cron.id)).paused
        assert (await client.crons.aio_get(cron.id)).input == {"a": 1}
        await client.crons.aio_delete(cron.id)
        assert await client.crons.aio_list(wf) == []

        scheduled = await wf.aio_schedule({"b": 2}, delay="1h")
        moved = await client.scheduled.aio_reschedule(scheduled.id, delay=7200)
        assert moved.trigger_at - scheduled.trigger_at > timedelta(minutes=59)
        assert (await client.scheduled.aio_get(scheduled.id)).input == {"b": 2}
        listed = await client.scheduled.aio_list(wf, status="SCHEDULED")
        assert [s.id for s in listed] == [scheduled.id]
        other = await client.scheduled.aio_create(wf.name, at=datetime.now(UTC) + timedelta(1))
        assert (await client.scheduled.aio_cancel(scheduled.id)).status == "CANCELLED"
        assert (await client.scheduled.aio_cancel(other.id)).status == "CANCELLED"
        await client.aclose()

    asyncio.run(application())


def test_on_crons_are_checked_where_defined_and_registered_as_declared_crons(
    stack: Stack, flows: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    client: Roost = flows.roost
    with pytest.raises(InvalidDefinitionError, match=r"'0 25 \* \* \*': bad hour"):
        define(client, on_crons=["0 3 * * *", "0 25 * * *"])
    with pytest.raises(InvalidDefinitionError, match="the same schedule twice"):
        define(client, on_crons=["@hourly", "0 * * * *"])
    with pytest.raises(InvalidDefinitionError, match="must be a list"):
        define(client, on_crons="@daily")

    wf = define(client, on_crons=["0 3 * * *", "@hourly"], cron_input={"scope": "all"})
    assert wf.definition().on_crons == ["0 3 * * *", "0 * * * *"]
    wf.register()
    declared = client.crons.list(wf)
    assert sorted(c.expression for c in declared) == ["0 * * * *", "0 3 * * *"]
    assert all(c.declared and c.input == {"scope": "all"} for c in declared)
    with pytest.raises(ConflictError, match="on_crons"):
        client.crons.delete(declared[0].id)
    # A bad expression made at run time is refused by the api, naming it.
    with pytest.raises(BadRequestError, match=r"'61 \* \* \* \*': bad minute"):
        client.crons.create(wf, "bad", "61 * * * *")

    # The command line shows the declared crons beside one it made; a bad expression
    # fails there too, with the api's message and a non-zero exit.
    made = invoke(
        monkeypatch,
        *("crons", "create", wf.name, "nightly", "30 2 * * *", "--tz", "Europe/Berlin"),
        *("--input", '{"n": 1}', "--meta", "team=infra", "--catch-up", "none"),
    )
    assert made.exit_code == 0, made.output
    cron_id = UUID_RE.findall(made.stdout)[0]
    assert f"cron {cron_id} 'nightly' of {wf.name}: 30 2 * * * (Europe/Berlin), next at " in (
        made.stdout
    )
    listed = invoke(monkeypatch, "crons", "list", "--workflow", wf.name).stdout
    rows = {line.split()[1]: line for line in listed.splitlines() if UUID_RE.search(line)}
    assert rows.keys() == {cron_id, *(c.id for c in declared)}
    assert "30 2 * * * (Europe/Berlin)" in rows[cron_id] and "active" in rows[cron_id]
    assert all("active, declared" in rows[c.id] and "(UTC)" in rows[c.id] for c in declared)
    bad = cli(stack, "crons", "create", wf.name, "bad", "61 * * * *")
    assert bad.returncode == 1 and "'61 * * * *': bad minute" in bad.stderr
    made_cron = client.crons.get(cron_id)
    assert made_cron.metadata == {"team": "infra"} and made_cron.catch_up == "none"
    assert made_cron.input == {"n": 1}


def test_the_crons_commands_pause_show_resume_and_delete(
    stack: Stack, flows: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    client: Roost = flows.roost
    wf = define(client)
    cron = client.crons.create(wf, "nightly", "0 3 * * *", input={"n": 1})

    paused = invoke(monkeypatch, "crons", "pause", cron.id)
    assert f"cron {cron.id} 'nightly' of {wf.name}: paused" in paused.stdout, paused.output
    shown = invoke(monkeypatch, "crons", "get", cron.id).stdout
    assert f"cron {cron.id} 'nightly' of {wf.name}: paused" in shown
    assert "schedule: 0 3 * * * (UTC), catch-up latest" in shown
    assert 'input: {"n": 1}' in shown and "no runs yet" in shown
    as_json = invoke(monkeypatch, "crons", "get", cron.id, "--json").stdout
    assert Cron.model_validate_json(as_json).paused is True
    resumed = invoke(monkeypatch, "crons", "resume", cron.id)
    assert "resumed, next at" in resumed.stdout and not client.crons.get(cron.id).paused
    deleted = invoke(monkeypatch, "crons", "delete", cron.id)
    assert deleted.exit_code == 0 and f"cron {cron.id} deleted" in deleted.stdout
    assert client.crons.list(wf) == []
    gone = invoke(monkeypatch, "crons", "get", cron.id)
    assert gone.exit_code == 1 and f"cron {cron.id} not found" in flat(gone.stderr)


def test_roost_run_in_schedules_and_the_scheduled_commands_move_and_cancel_it(
    stack: Stack, flows: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    client: Roost = flows.roost
    wf = define(client)
    wf.register()

    done = cli(stack, "run", wf.name, "--in", "1h", "--input", '{"k": 1}', "--meta", "a=b")
    assert done.returncode == 0, done.stderr
    assert f"of {wf.name} at " in done.stdout and done.stdout.strip().endswith("SCHEDULED")
    scheduled_id = UUID_RE.findall(done.stdout)[0]
    found = client.scheduled.get(scheduled_id)
    assert found.input == {"k": 1} and found.metadata == {"a": "b"}
    assert timedelta(minutes=59) < found.trigger_at - found.created_at < timedelta(minutes=61)
    assert client.runs.list(workflow=wf.name)[0] == []  # scheduled, not started

    listed = invoke(monkeypatch, "scheduled", "list", "--workflow", wf.name).stdout
    [row] = [line for line in listed.splitlines() if scheduled_id in line]
    assert wf.name in row and "SCHEDULED" in row
    moved = invoke(
        monkeypatch, "scheduled", "reschedule", scheduled_id, "--at", "2030-01-01T03:00:00Z"
    )
    assert "now at 2030-01-01 03:00:00 UTC" in moved.stdout, moved.output
    shown = flat(invoke(monkeypatch, "scheduled", "get", scheduled_id).stdout)
    assert f"scheduled run {scheduled_id} of {wf.name}: SCHEDULED" in shown
    assert 'at: 2030-01-01 03:00:00 UTC input: {"k": 1} metadata: a=b' in shown
    cancelled = cli(stack, "scheduled", "cancel", scheduled_id)
    assert f"scheduled run {scheduled_id} of {wf.name} CANCELLED" in cancelled.stdout
    assert client.scheduled.get(scheduled_id).status == "CANCELLED"
    as_json = invoke(monkeypatch, "scheduled", "list", "--status", "cancelled", "--json")
    assert scheduled_id in {s["id"] for s in json.loads(as_json.stdout)}

    again = invoke(monkeypatch, "scheduled", "cancel", scheduled_id)
    assert again.exit_code == 1 and "it was cancelled" in again.stderr
    naive = invoke(monkeypatch, "run", wf.name, "--at", "2030-01-01T03:00:00")
    assert naive.exit_code == 1 and "'2030-01-01T03:00:00' has no time zone" in naive.stderr
    neither = invoke(monkeypatch, "scheduled", "reschedule", scheduled_id)
    assert neither.exit_code == 1 and "exactly one of --at" in neither.stderr
    waiting = invoke(monkeypatch, "run", wf.name, "--in", "1h", "--wait")
    assert waiting.exit_code == 1 and "--wait" in waiting.stderr
    assert [s.id for s in client.scheduled.list(wf)] == [scheduled_id]
