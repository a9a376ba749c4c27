"""Fault injection: 300 runs of the 4-task `load` chain are in flight when a process dies
or freezes, or a server restarts. Every run must still end SUCCEEDED, every task must be
recorded as succeeded exactly once, nothing may be left running or in the outbox, and
the services must carry on by themselves.

Each test prints, and appends to `last_recovery.txt` in pytest's temporary directory,
the time from the fault to the moment the last run finished. The servers are private
(tests/faults/servers.py): stopping them touches nothing else on the machine. Unhealthy
leftovers of one test are mended before the next (the `healthy` fixture)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import httpx
from faults.servers import WORKER_PROCESSES, Cluster

import roost

N_RUNS = 300
TASKS = ("l1", "l2", "l3", "l4")
FINAL = ["SUCCEEDED", "FAILED", "CANCELLED"]
FINAL_WITHIN = 120.0  # seconds from the fault to every run's end
OUTBOX_DRAINS_WITHIN = 15.0
FREEZE_SECONDS = 20.0
# 300 runs take about a second on a 2-core machine: inject the fault once this many
# tasks have succeeded, so that it lands on work in every stage (queued on the broker,
# running, reported, being scheduled, in the outbox).
TASKS_DONE_BEFORE_FAULT = 30


@dataclass
class Load:
    """300 runs of `load`, their idempotency keys and ids, and when things happened."""

    prefix: str = field(default_factory=lambda: f"fault-{uuid.uuid4().hex[:8]}")
    ids: list[str] = field(default_factory=list)
    triggered_at: float = 0.0
    fault_at: float = 0.0
    in_flight_at_fault: int = -1

    @property
    def keys(self) -> list[str]:
        return [f"{self.prefix}-{i}" for i in range(N_RUNS)]

    def trigger(self, flows: ModuleType) -> None:
        """Trigger all 300 in chunks of 100; the keys make a retried trigger harmless."""
        inputs = [{"i": i} for i in range(N_RUNS)]
        refs = flows.load.run_many(inputs, idempotency_keys=self.keys, chunk_size=100)
        self.ids = [r.id for r in refs]


# -- helpers ------------------------------------------------------------------------------


def _count_final(cluster: Cluster, ids: list[str]) -> int | None:
    """Runs of ``ids`` in a final state, or None while PostgreSQL is unreachable."""
    rows = cluster.try_sql(
        "SELECT count(*) FROM runs WHERE id = ANY(%s::uuid[]) AND status = ANY(%s)", ids, FINAL
    )
    return None if rows is None else int(rows[0][0])  # type: ignore[call-overload]


def _start_load(cluster: Cluster, flows: ModuleType) -> Load:
    load = Load()
    load.triggered_at = time.time()
    load.trigger(flows)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (done,) = cluster.sql(
            "SELECT count(*) FROM task_runs WHERE run_id = ANY(%s::uuid[])"
            " AND status = 'SUCCEEDED'",
            load.ids,
        )[0]
        if int(done) >= TASKS_DONE_BEFORE_FAULT:  # type: ignore[call-overload]
            return load
        time.sleep(0.005)
    raise AssertionError(f"the load never got going:\n{cluster.diagnosis(load.ids)}")


def _fault_now(cluster: Cluster, load: Load) -> None:
    """Mark the instant of the fault, and how many runs it caught in flight."""
    load.fault_at = time.time()
    final = _count_final(cluster, load.ids) if load.ids else 0
    load.in_flight_at_fault = N_RUNS - (final or 0)


def _wait_final(cluster: Cluster, load: Load, until: float) -> int:
    """Wait until every run is final or the clock passes ``until``; the final count."""
    final = 0
    while True:
        final = _count_final(cluster, load.ids) or final
        if final == N_RUNS or time.time() >= until:
            return final
        time.sleep(0.2)


def _assert_all_final(cluster: Cluster, load: Load, within: float = FINAL_WITHIN) -> None:
    final = _wait_final(cluster, load, load.fault_at + within)
    assert final == N_RUNS, (
        f"only {final} of {N_RUNS} runs reached a final state within {within:.0f} s of the"
        f" fault:\n{cluster.diagnosis(load.ids)}"
    )


def _report(recovery_log: Path, name: str, cluster: Cluster, load: Load, note: str = "") -> float:
    """Print and record the time from the fault to the end of the last run."""
    (last,) = cluster.sql(
        "SELECT extract(epoch FROM max(finished_at))::float8 FROM runs WHERE id = ANY(%s::uuid[])",
        load.ids,
    )[0]
    recovered = float(last) - load.fault_at  # type: ignore[arg-type]
    attempts: dict[object, object] = dict(
        cluster.sql(  # type: ignore[arg-type]
            "SELECT attempt, count(*) FROM task_runs WHERE run_id = ANY(%s::uuid[])"
            " GROUP BY 1 ORDER BY 1",
            load.ids,
        )
    )
    line = (
        f"{name}: recovered in {recovered:.2f} s (fault to last run finished);"
        f" {load.in_flight_at_fault}/{N_RUNS} runs in flight at the fault,"
        f" {load.fault_at - load.triggered_at:.2f} s after the trigger began;"
        f" task runs by attempt {attempts}" + (f"; {note}" if note else "")
    )
    print(f"\n[recovery] {line}")
    with recovery_log.open("a") as f:
        f.write(line + "\n")
    return recovered


def _assert_exactly_once(cluster: Cluster, load: Load) -> None:
    """Every run SUCCEEDED; every task succeeded, recorded once; nothing left over; the
    api, scheduler and worker of the end of the test all still running."""
    ids = load.ids

    def why() -> str:
        return cluster.diagnosis(ids)

    assert len(set(ids)) == N_RUNS
    (by_key,) = cluster.sql(
        "SELECT count(*) FROM runs WHERE idempotency_key LIKE %s", load.prefix + "-%"
    )[0]
    assert by_key == N_RUNS, f"{by_key} runs carry this test's idempotency keys, not {N_RUNS}"

    statuses: dict[object, object] = dict(
        cluster.sql(  # type: ignore[arg-type]
            "SELECT status, count(*) FROM runs WHERE id = ANY(%s::uuid[]) GROUP BY 1", ids
        )
    )
    assert statuses == {"SUCCEEDED": N_RUNS}, f"runs by status {statuses}\n{why()}"

    # One task_runs row per (run, task), SUCCEEDED: that row is the task's recorded success.
    per_task = cluster.sql(
        "SELECT task_name, status, count(*), count(DISTINCT run_id) FROM task_runs"
        " WHERE run_id = ANY(%s::uuid[]) GROUP BY 1, 2 ORDER BY 1, 2",
        ids,
    )
    assert per_task == [(t, "SUCCEEDED", N_RUNS, N_RUNS) for t in TASKS], (
        f"task runs as (task, status, rows, runs): {per_task}\n{why()}"
    )
    # ... and never a second success recorded as an attempt of its own.
    (extra,) = cluster.sql(
        "SELECT count(*) FROM task_attempts a JOIN task_runs t ON t.id = a.task_run_id"
        " WHERE t.run_id = ANY(%s::uuid[]) AND a.status = 'SUCCEEDED'",
        ids,
    )[0]
    assert extra == 0, f"{extra} extra successes recorded in task_attempts\n{why()}"
    # Each chain carried its own input through its four tasks, even where one re-ran.
    wrong = cluster.sql(
        "SELECT r.id FROM runs r JOIN task_runs t ON t.run_id = r.id AND t.task_name = 'l4'"
        " WHERE r.id = ANY(%s::uuid[]) AND ((t.output->>'i')::int <> (r.input->>'i')::int"
        "   OR (SELECT count(*) FROM jsonb_object_keys(r.output)) <> 4)",
        ids,
    )
    assert wrong == [], f"{len(wrong)} runs with a wrong output"

    # Nothing is left in flight: no run or task QUEUED, RUNNING or PENDING, and (below)
    # no message waiting in the outbox.
    stuck = cluster.sql(
        "SELECT status, count(*) FROM runs WHERE id = ANY(%s::uuid[]) AND status <> ALL(%s)"
        " GROUP BY 1",
        ids,
        FINAL,
    )
    assert stuck == [], f"runs not final: {stuck}\n{why()}"
    stuck_tasks = cluster.sql(
        "SELECT status, count(*) FROM task_runs WHERE run_id = ANY(%s::uuid[])"
        " AND status IN ('PENDING', 'QUEUED', 'RUNNING') GROUP BY 1",
        ids,
    )
    assert stuck_tasks == [], f"task runs not final: {stuck_tasks}\n{why()}"

    deadline = time.monotonic() + OUTBOX_DRAINS_WITHIN
    left = cluster.sql("SELECT count(*) FROM outbox")[0][0]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = cluster.sql("SELECT count(*) FROM outbox")[0][0]
    assert left == 0, f"{left} outbox rows left after {OUTBOX_DRAINS_WITHIN:.0f} s\n{why()}"

    # The services carried on by themselves: nothing the test did not kill has exited.
    for which in ("api", "scheduler", "worker"):
        proc = getattr(cluster, which)
        assert proc is not None and proc.popen.poll() is None, (
            f"the {which} process {proc.name if proc else '?'} exited\n{why()}"
        )


def _survives(
    cluster: Cluster,
    flows: ModuleType,
    recovery_log: Path,
    name: str,
    inject: Callable[[Load], None],
) -> None:
    """Start the load, inject the fault (``inject`` calls _fault_now at the instant it
    strikes), then check that everything recovered, exactly once."""
    load = _start_load(cluster, flows)
    inject(load)
    assert load.in_flight_at_fault > 0, "the load had finished before the fault"
    _assert_all_final(cluster, load)
    _report(recovery_log, name, cluster, load)
    _assert_exactly_once(cluster, load)


# -- the tests ------------------------------------------------------------------------------


def test_without_a_fault_300_runs_all_succeed_exactly_once_as_a_baseline(
    healthy: Cluster, flows: ModuleType, recovery_log: Path
) -> None:
    load = Load()
    load.triggered_at = time.time()
    load.fault_at = load.triggered_at  # no fault: measured from the trigger
    load.in_flight_at_fault = N_RUNS
    load.trigger(flows)
    _assert_all_final(healthy, load)
    _report(recovery_log, "baseline, no fault (trigger to last run)", healthy, load)
    _assert_exactly_once(healthy, load)


def test_a_worker_process_killed_mid_load_has_its_tasks_run_again_and_every_run_succeeds(
    healthy: Cluster, flows: ModuleType, recovery_log: Path
) -> None:
    old = healthy.worker

    def kill_one_worker_process(load: Load) -> None:
        victim = healthy.worker_children()[0]
        _fault_now(healthy, load)
        healthy.kill(victim)
        # Dramatiq's parent then stops its other process and exits. Start a new worker
        # at once, as a supervisor would.
        healthy.start_worker()

    _survives(healthy, flows, recovery_log, "worker process SIGKILL", kill_one_worker_process)
    healthy.forget(old)


def test_the_scheduler_killed_mid_load_and_replaced_2_s_later_loses_and_repeats_nothing(
    healthy: Cluster, flows: ModuleType, recovery_log: Path
) -> None:
    def kill_scheduler(load: Load) -> None:
        old = healthy.scheduler
        assert old is not None
        _fault_now(healthy, load)
        healthy.kill(old.pid)
        healthy.forget(old)
        time.sleep(2)
        healthy.start_scheduler()

    _survives(healthy, flows, recovery_log, "scheduler SIGKILL, new one 2 s later", kill_scheduler)


def test_the_api_killed_mid_trigger_loses_no_run_and_the_retried_trigger_duplicates_none(
    healthy: Cluster, flows: ModuleType, recovery_log: Path
) -> None:
    load = Load()
    errors: list[str] = []
    accepted = threading.Event()

    def trigger_until_accepted() -> None:
        """What a careful client does: on a connection error, send the same runs again
        with the same idempotency keys, until the api accepts them all."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                load.trigger(flows)
                accepted.set()
                return
            except (roost.ApiUnavailableError, httpx.TransportError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.1)

    load.triggered_at = time.time()
    thread = threading.Thread(target=trigger_until_accepted, name="trigger", daemon=True)
    thread.start()
    # Kill the api the moment the first chunk of 100 has committed: that chunk's response,
    # or the next chunk, is then in flight.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and thread.is_alive():
        (n,) = healthy.sql(
            "SELECT count(*) FROM runs WHERE idempotency_key LIKE %s", load.prefix + "-%"
        )[0]
        if n:
            break
        time.sleep(0.002)
    old = healthy.api
    assert old is not None
    load.fault_at = time.time()
    healthy.kill(old.pid)
    (committed,) = healthy.sql(
        "SELECT count(*) FROM runs WHERE idempotency_key LIKE %s", load.prefix + "-%"
    )[0]
    load.in_flight_at_fault = int(committed)  # type: ignore[call-overload]
    healthy.forget(old)
    healthy.start_api()  # on the same port
    thread.join(90)
    assert accepted.is_set() and len(load.ids) == N_RUNS, f"trigger never accepted: {errors}"
    assert errors, "the api was killed, yet no trigger request failed: the kill came too late"

    _assert_all_final(healthy, load)
    _report(
        recovery_log,
        "api SIGKILL mid-trigger, new api on the same port",
        healthy,
        load,
        note=f"{committed} runs committed at the kill; {len(errors)} trigger attempt(s)"
        f" failed before one succeeded: {sorted({e[:140] for e in errors})}",
    )
    _assert_exactly_once(healthy, load)


def test_a_rabbitmq_restart_mid_load_is_survived_by_every_service_and_every_run_succeeds(
    healthy: Cluster, flows: ModuleType, recovery_log: Path
) -> None:
    def restart_rabbitmq(load: Load) -> None:
        _fault_now(healthy, load)
        # An orderly stop (SIGTERM: the broker goes away at once, not after the CLI
        # boots), then a start; durable queues and persistent messages survive it.
        healthy.rabbit.restart(via="sigterm")

    _survives(healthy, flows, recovery_log, "RabbitMQ stop + start", restart_rabbitmq)


def test_rabbitmq_closing_every_client_connection_mid_load_loses_and_repeats_nothing(
    healthy: Cluster, flows: ModuleType, recovery_log: Path
) -> None:
    def close_all_connections(load: Load) -> None:
        # As a broker failover or an idle-cutting load balancer does: the broker stays
        # up, every client connection (workers, scheduler, api, ratelimiter, gateway,
        # span shippers) is cut at once, and each must notice and reconnect.
        _fault_now(healthy, load)
        healthy.rabbit.ctl("close_all_connections", "roost fault test: failover")

    _survives(
        healthy, flows, recovery_log, "RabbitMQ closes every connection", close_all_connections
    )


def test_a_postgresql_crash_and_restart_mid_load_is_survived_and_every_run_succeeds(
    healthy: Cluster, flows: ModuleType, recovery_log: Path
) -> None:
    def restart_postgres(load: Load) -> None:
        _fault_now(healthy, load)
        healthy.pg.restart(mode="immediate")

    _survives(healthy, flows, recovery_log, "PostgreSQL immediate stop + start", restart_postgres)


def test_a_worker_process_frozen_for_20_s_holds_up_no_run_and_its_late_reports_change_nothing(
    healthy: Cluster, flows: ModuleType, recovery_log: Path
) -> None:
    """SIGSTOP: the frozen process looks alive to TCP. Missed heartbeats must give its
    attempts to other workers, so the runs finish while it is still frozen; when it wakes
    up, whatever it still reports is stale and must change nothing."""
    load = _start_load(healthy, flows)
    victim = healthy.worker_children()[0]
    _fault_now(healthy, load)
    os.kill(victim, signal.SIGSTOP)
    snapshot = (
        "SELECT t.id, t.status, t.attempt, t.output, t.worker_id, t.finished_at"
        " FROM task_runs t JOIN runs r ON r.id = t.run_id"
        " WHERE r.id = ANY(%s::uuid[]) AND r.status = 'SUCCEEDED' ORDER BY t.id"
    )
    try:
        final_while_frozen = _wait_final(healthy, load, until=load.fault_at + FREEZE_SECONDS)
        time.sleep(max(0.0, load.fault_at + FREEZE_SECONDS - time.time()))
        before_wake = healthy.sql(snapshot, load.ids)
    finally:
        healthy.cont(victim)
    assert load.in_flight_at_fault > 0, "the load had finished before the fault"
    _assert_all_final(healthy, load, within=FREEZE_SECONDS + FINAL_WITHIN)
    time.sleep(3)  # the woken process sends whatever it still had; it must change nothing
    after_wake = {row[0]: row for row in healthy.sql(snapshot, load.ids)}
    changed = [row for row in before_wake if after_wake.get(row[0]) != row]
    assert changed == [], f"{len(changed)} finished task runs changed after the worker woke"
    # The woken process carries on: both worker processes consume again.
    assert healthy.worker is not None
    healthy.wait_consumers(healthy.task_queue, WORKER_PROCESSES, healthy.worker, timeout=15)
    recovered = _report(
        recovery_log,
        f"worker process SIGSTOP for {FREEZE_SECONDS:.0f} s",
        healthy,
        load,
        note=f"{N_RUNS - final_while_frozen} runs still unfinished when it was resumed",
    )
    _assert_exactly_once(healthy, load)
    assert final_while_frozen == N_RUNS, (
        f"{N_RUNS - final_while_frozen} runs waited for the frozen worker process: the last"
        f" run finished {recovered:.1f} s after the freeze, which lasted {FREEZE_SECONDS:.0f} s."
        " A frozen worker's attempts must go to another worker once it misses its heartbeats."
    )
