"""Test workflows. Workers run this module as `roost worker roost_testapps.flows:NAME`;
tests import it to trigger runs. Tasks record timestamps so tests can check ordering
and overlap from the tasks' own clocks."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from roost import (
    Concurrency,
    Context,
    DurableContext,
    EventCondition,
    NonRetryableError,
    RateLimit,
    Roost,
    RunFailedError,
    WaitTimeoutError,
)

roost = Roost()

# -- a linear chain, sync and async ---------------------------------------------------
chain = roost.workflow("t-chain")


@chain.task()
def check_deps(input: dict, ctx: Context) -> dict:
    return {"deps": ["a", "b"], "task_id": input["task_id"], "t": time.time()}


@chain.task(parents=[check_deps])
async def process(input: dict, ctx: Context) -> dict:
    await asyncio.sleep(0)
    return {"n": len(ctx.task_output(check_deps)["deps"]), "t": time.time()}


@chain.task(parents=[process])
def verify(input: dict, ctx: Context) -> dict:
    return {"ok": ctx.task_output(process)["n"] == 2, "t": time.time()}


@chain.task(parents=[verify])
def commit(input: dict, ctx: Context) -> dict:
    return {
        "committed": ctx.task_output(verify)["ok"],
        "task_id": input["task_id"],
        "t": time.time(),
    }


# -- a diamond whose middle tasks must overlap -----------------------------------------
diamond = roost.workflow("t-diamond")


@diamond.task()
def start(input: dict, ctx: Context) -> dict:
    return {"seed": input.get("seed", 1)}


@diamond.task(parents=[start])
def left(input: dict, ctx: Context) -> dict:
    began = time.time()
    time.sleep(0.5)
    return {"value": ctx.task_output(start)["seed"] * 2, "began": began, "ended": time.time()}


@diamond.task(parents=[start])
async def right(input: dict, ctx: Context) -> dict:
    began = time.time()
    await asyncio.sleep(0.5)
    return {"value": ctx.task_output(start)["seed"] * 3, "began": began, "ended": time.time()}


@diamond.task(parents=[left, right])
def join(input: dict, ctx: Context) -> dict:
    return {"sum": ctx.task_output(left)["value"] + ctx.task_output(right)["value"]}


# -- a failure in one branch -------------------------------------------------------------
failing = roost.workflow("t-failing")


@failing.task()
def begin(input: dict, ctx: Context) -> dict:
    return {}


@failing.task(parents=[begin])
def explode(input: dict, ctx: Context) -> dict:
    raise RuntimeError(f"boom for {input.get('task_id')}")


@failing.task(parents=[explode])
def after_explode(input: dict, ctx: Context) -> dict:
    return {"should": "never run"}


@failing.task(parents=[begin])
def independent(input: dict, ctx: Context) -> dict:
    time.sleep(0.3)
    return {"independent": True}


# -- input validated by a pydantic model ---------------------------------------------------
class BeadInput(BaseModel):
    task_id: str
    priority: int = 1


validated = roost.workflow("t-validated", input_validator=BeadInput)


@validated.task()
def echo(input: BeadInput, ctx: Context) -> dict:
    return {"task_id": input.task_id, "priority": input.priority, "model": type(input).__name__}


# -- a task that talks while it works: logs, progress, stream chunks ----------------------
chatty = roost.workflow("t-chatty")


@chatty.task()
def fetch(input: dict, ctx: Context) -> dict:
    ctx.log("cloning repository")
    for i in range(input.get("chunks", 3)):
        ctx.put_stream({"tokens": 100 * (i + 1)})
        time.sleep(input.get("pause", 0.0))
    ctx.progress(0.5, "running tests")
    return {"fetched": True}


@chatty.task(parents=[fetch])
async def report(input: dict, ctx: Context) -> dict:
    ctx.log("writing report")
    ctx.progress(1.0, "done")
    return {"reported": True}


# -- the run's metadata inside its tasks (ctx.metadata), root and child ----------------
metadata_reader = roost.workflow("t-metadata")


@metadata_reader.task()
def read_metadata(input: dict, ctx: Context) -> dict:
    return ctx.metadata


@metadata_reader.task(parents=[read_metadata])
def read_metadata_again(input: dict, ctx: Context) -> dict:
    return ctx.metadata


basic = roost.worker(
    "basic",
    workflows=[chain, diamond, failing, validated, chatty, metadata_reader],
    slots=8,
    version="flows-1",
)

# -- a load test workflow on its own queue ---------------------------------------------------
load = roost.workflow("t-load")


@load.task()
def l1(input: dict, ctx: Context) -> dict:
    return {"i": input["i"]}


@load.task(parents=[l1])
def l2(input: dict, ctx: Context) -> dict:
    return {"i": ctx.task_output(l1)["i"]}


@load.task(parents=[l2])
def l3(input: dict, ctx: Context) -> dict:
    return {"i": ctx.task_output(l2)["i"]}


@load.task(parents=[l3])
def l4(input: dict, ctx: Context) -> dict:
    return {"i": ctx.task_output(l3)["i"], "pid": os.getpid()}


loader = roost.worker("loader", workflows=[load], slots=8)

# -- a task killed mid-flight -------------------------------------------------------------
crash = roost.workflow("t-crash")


@crash.task()
def slow(input: dict, ctx: Context) -> dict:
    """Writes the pid of each process that starts it, then works for a while."""
    marker = Path(input["marker_dir"]) / f"{os.getpid()}.started"
    marker.write_text(ctx.worker_id)
    time.sleep(input.get("seconds", 3))
    return {"pid": os.getpid()}


@crash.task(parents=[slow])
def after_slow(input: dict, ctx: Context) -> dict:
    return {"after": ctx.task_output(slow)["pid"]}


crasher = roost.worker("crasher", workflows=[crash], slots=2)

# -- retries, backoff, timeouts ---------------------------------------------------------------

flaky = roost.workflow("t-flaky")


@flaky.task(retries=3, backoff_initial_seconds=0.3, backoff_factor=2.0)
def sometimes(input: dict, ctx: Context) -> dict:
    if ctx.attempt_number < input["succeed_on"]:
        raise RuntimeError(f"attempt {ctx.attempt_number} fails")
    return {"attempt": ctx.attempt_number, "retry_count": ctx.retry_count}


@flaky.task(parents=[sometimes])
def after_sometimes(input: dict, ctx: Context) -> dict:
    return {"saw": ctx.task_output(sometimes)["attempt"]}


refusing = roost.workflow("t-refusing")


@refusing.task(retries=3, backoff_initial_seconds=0.1)
def refuse(input: dict, ctx: Context) -> dict:
    raise NonRetryableError("bad credentials")


exhausting = roost.workflow("t-exhausting")


@exhausting.task(retries=2, backoff_initial_seconds=0.1)
def always_fails(input: dict, ctx: Context) -> dict:
    raise ValueError(f"no luck on attempt {ctx.attempt_number}")


hanging = roost.workflow("t-hanging")


@hanging.task(execution_timeout="1s", retries=1, backoff_initial_seconds=0.1)
def hang(input: dict, ctx: Context) -> dict:
    Path(input["marker_dir"], f"sync-{ctx.attempt_number}.started").touch()
    # Busy Python code: Dramatiq's time limit interrupts it between bytecodes. (A thread
    # blocked inside one long C call, such as a single time.sleep(8), is interrupted
    # only when that call returns; the engine's own deadline covers that case.)
    until = time.time() + input.get("sleep", 8)
    while time.time() < until:
        time.sleep(0.05)
    Path(input["marker_dir"], f"sync-{ctx.attempt_number}.finished").touch()
    return {}


hanging_async = roost.workflow("t-hanging-async")


@hanging_async.task(execution_timeout=1.0)
async def hang_async(input: dict, ctx: Context) -> dict:
    Path(input["marker_dir"], "async.started").touch()
    await asyncio.sleep(input.get("sleep", 8))
    Path(input["marker_dir"], "async.finished").touch()
    return {}


stuck = roost.workflow("t-stuck")


@stuck.task(execution_timeout=1)
def stuck_in_c(input: dict, ctx: Context) -> dict:
    time.sleep(input["sleep"])  # one C call: no Python-level interruption until it returns
    return {"late": True}


durable = roost.workflow("t-durable-backoff")


@durable.task(retries=1, backoff_initial_seconds=4.0)
def fails_once(input: dict, ctx: Context) -> dict:
    if ctx.attempt_number == 1:
        raise RuntimeError("first attempt fails")
    return {"attempt": ctx.attempt_number, "at": time.time()}


# No worker serves this workflow: its task can only time out waiting.
unserved = roost.workflow("t-unserved")


@unserved.task(schedule_timeout="1s")
def never_picked_up(input: dict, ctx: Context) -> dict:
    return {}


# A long session that asks for more time (ctx.refresh_timeout) than its timeout gives.
refreshing = roost.workflow("t-refreshing")


@refreshing.task(execution_timeout="1s")
def long_session(input: dict, ctx: Context) -> dict:
    if input.get("refresh"):
        ctx.refresh_timeout(input["refresh"])
    until = time.time() + input["work"]
    while time.time() < until:  # busy: Dramatiq's time limit could interrupt it
        time.sleep(0.05)
    return {"worked": input["work"]}


reliable = roost.worker(
    "reliable",
    workflows=[flaky, refusing, exhausting, hanging, hanging_async, stuck, durable, refreshing],
    slots=8,
)

# -- cancellation and replay ------------------------------------------------------------------
from roost import TaskCancelledError  # noqa: E402

cancellable = roost.workflow("t-cancellable")


@cancellable.task()
def long_sync(input: dict, ctx: Context) -> dict:
    marks = Path(input["marker_dir"])
    (marks / "sync.started").touch()
    try:
        until = time.time() + 20
        while time.time() < until:
            time.sleep(0.05)
    except TaskCancelledError:
        (marks / "sync.interrupted").touch()
        raise
    (marks / "sync.finished").touch()
    return {}


@cancellable.task()
async def long_async(input: dict, ctx: Context) -> dict:
    marks = Path(input["marker_dir"])
    (marks / "async.started").touch()
    try:
        await asyncio.sleep(20)
    except asyncio.CancelledError:
        (marks / "async.interrupted").touch()
        raise
    (marks / "async.finished").touch()
    return {}


@cancellable.task()
def cooperative(input: dict, ctx: Context) -> dict:
    marks = Path(input["marker_dir"])
    (marks / "coop.started").touch()
    until = time.time() + 20
    while time.time() < until:
        if ctx.is_cancelled:
            (marks / "coop.noticed").touch()
            return {"stopped": True}
        time.sleep(0.05)
    return {}


@cancellable.task(parents=[long_sync])
def after_long(input: dict, ctx: Context) -> dict:
    Path(input["marker_dir"], "after.started").touch()
    return {}


# Replay: `shaky` fails until a file exists; `steady` succeeds once and must not rerun.
replayable = roost.workflow("t-replayable")


@replayable.task()
def steady(input: dict, ctx: Context) -> dict:
    runs = Path(input["marker_dir"], "steady.count")
    runs.write_text(str(int(runs.read_text() or 0) + 1) if runs.exists() else "1")
    return {"steady": True}


@replayable.task(parents=[steady])
def shaky(input: dict, ctx: Context) -> dict:
    if not Path(input["marker_dir"], "fixed").exists():
        raise RuntimeError("not fixed yet")
    return {"attempt": ctx.attempt_number, "saw": ctx.task_output(steady)}


@replayable.task(parents=[shaky])
def after_shaky(input: dict, ctx: Context) -> dict:
    return {"after": ctx.task_output(shaky)["attempt"]}


@replayable.task(parents=[steady])
def sibling(input: dict, ctx: Context) -> dict:
    return {"sibling": True}


# Served by `late_worker` only, which tests start after cancelling.
queued_only = roost.workflow("t-queued-only")


@queued_only.task()
def should_never_start(input: dict, ctx: Context) -> dict:
    Path(input["marker_dir"], "queued.started").touch()
    return {}


# One task cancelled on its own (ctx.cancel) or from outside (roost.runs.cancel_task):
# its descendant never starts, the independent branch goes on.
one_cancelled = roost.workflow("t-one-cancelled")


@one_cancelled.task(retries=2)
def gate(input: dict, ctx: Context) -> dict:
    if input.get("cancel"):
        ctx.cancel(input["cancel"])  # raises: nothing after it runs
    until = time.time() + input.get("work", 0)
    release = Path(input["release"]) if input.get("release") else None
    while time.time() < until:  # busy: a cancel interrupts it
        if release is not None and release.exists():
            break  # the test lets it finish
        time.sleep(0.05)
    return {"gate": "passed"}


@one_cancelled.task(parents=[gate])
def behind_gate(input: dict, ctx: Context) -> dict:
    return {"behind": True}


@one_cancelled.task()
def beside_gate(input: dict, ctx: Context) -> dict:
    return {"beside": True}


controlled = roost.worker("controlled", workflows=[cancellable, replayable, one_cancelled], slots=8)
late_worker = roost.worker("late", workflows=[queued_only], slots=2)

# -- on_failure ----------------------------------------------------------------------------
handled = roost.workflow("t-handled")


@handled.task()
def might_fail(input: dict, ctx: Context) -> dict:
    if input.get("fail"):
        raise KeyError("missing credentials")
    return {"ok": True}


@handled.task()
def independent_branch(input: dict, ctx: Context) -> dict:
    return {"independent": True}


@handled.on_failure()
def cleanup(input: dict, ctx: Context) -> dict:
    errors = ctx.task_errors()
    return {
        "failed": sorted(errors),
        "types": [errors[k]["type"] for k in sorted(errors)],
        "input": input,
    }


# A handler whose first attempt fails: its retry must see the failed tasks too.
handled_again = roost.workflow("t-handled-again")


@handled_again.task()
def always_breaks(input: dict, ctx: Context) -> dict:
    raise ValueError("broken on purpose")


@handled_again.on_failure(retries=1, backoff_initial_seconds=0.1)
def cleanup_again(input: dict, ctx: Context) -> dict:
    if ctx.attempt_number == 1:
        raise RuntimeError("the handler's first attempt fails")
    return {"failed": sorted(ctx.task_errors()), "attempt": ctx.attempt_number}


handler_worker = roost.worker("handler", workflows=[handled, handled_again], slots=4)


# -- event triggers: runs started by pushed events ------------------------------------------
class TriggerInput(BaseModel):
    task_id: str
    priority: int = 1


trig_exact = roost.workflow("t-trig-exact", on_events=["task:ready"])


@trig_exact.task()
def exact_echo(input: dict, ctx: Context) -> dict:
    return input


trig_prefix = roost.workflow("t-trig-prefix", input_validator=TriggerInput, on_events=["task:*"])


@trig_prefix.task()
def prefix_echo(input: TriggerInput, ctx: Context) -> dict:
    return input.model_dump()


trig_other = roost.workflow("t-trig-other", on_events=["other:*"])


@trig_other.task()
def other_echo(input: dict, ctx: Context) -> dict:
    return input


triggered = roost.worker("triggered", workflows=[trig_exact, trig_prefix, trig_other], slots=4)

# -- event fan-out under volume: many large stream chunks ---------------------------------
fan_bulk = roost.workflow("t-fan-bulk")


@fan_bulk.task()
def blast(input: dict, ctx: Context) -> dict:
    """Streams ``chunks`` chunks of about ``size`` bytes each, ``pause`` s apart; each
    chunk carries its index and the time it was emitted."""
    pad = "x" * input.get("size", 1024)
    for i in range(input.get("chunks", 10)):
        ctx.put_stream({"i": i, "at": time.time(), "pad": pad})
        time.sleep(input.get("pause", 0.0))
    return {"sent": input.get("chunks", 10)}


fan_worker = roost.worker("fan", workflows=[fan_bulk], slots=8)

# -- rate limits: a concurrency key and a window key (roost_ratelimiter) ----------------
rl_sessions = roost.workflow("t-rl-sessions")


@rl_sessions.task(rate_limits=[RateLimit("rl-sessions")])
def session(input: dict, ctx: Context) -> dict:
    """Holds one unit of rl-sessions while it runs; records when, by its own clock."""
    began = time.time()
    time.sleep(input.get("seconds", 0.2))
    if input.get("fail"):
        raise RuntimeError("session failed on purpose")
    return {"began": began, "ended": time.time()}


rl_window = roost.workflow("t-rl-window")


@rl_window.task(rate_limits=[RateLimit("rl-window")])
def call_api(input: dict, ctx: Context) -> dict:
    return {"at": time.time()}


rl_greedy = roost.workflow("t-rl-greedy")


@rl_greedy.task(rate_limits=[RateLimit("rl-sessions", units=5)])
def greedy(input: dict, ctx: Context) -> dict:
    return {}


rl_unknown = roost.workflow("t-rl-unknown")


@rl_unknown.task(rate_limits=[RateLimit("rl-never-created")])
def orphan(input: dict, ctx: Context) -> dict:
    return {}


limited = roost.worker(
    "limited", workflows=[rl_sessions, rl_window, rl_greedy, rl_unknown], slots=8
)

rl_hold = roost.workflow("t-rl-hold")


@rl_hold.task(rate_limits=[RateLimit("rl-hold")])
def hold(input: dict, ctx: Context) -> dict:
    """The first process to run a run asked to linger (it leaves a marker file) holds
    its unit for a long time; any later execution is quick."""
    began = time.time()
    marker = Path(input["marker"]) if input.get("marker") else None
    if marker is not None and not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(input.get("first", 60))
    else:
        time.sleep(0.1)
    return {"began": began, "ended": time.time(), "pid": os.getpid()}


holder = roost.worker("holder", workflows=[rl_hold], slots=2)

# -- dynamic keys and workflow concurrency -------------------------------------------------
rl_peruser = roost.workflow("t-rl-peruser")


@rl_peruser.task(rate_limits=[RateLimit(dynamic_key="input.user_id", limit=1)])
def per_user(input: dict, ctx: Context) -> dict:
    began = time.time()
    time.sleep(input.get("seconds", 0.2))
    return {"began": began, "ended": time.time(), "user": input["user_id"]}


def _step(input: dict, ctx: Context) -> dict:
    began = time.time()
    deadline = began + input.get("seconds", 0.2)
    while time.time() < deadline and not ctx.is_cancelled:
        time.sleep(0.02)
    return {"began": began, "ended": time.time(), "repo": input["repo"], "n": input.get("n")}


cc_rr = roost.workflow("t-cc-rr", concurrency=Concurrency("input.repo", max_runs=1))
cc_rr.task(name="rr_step")(_step)
cc_cip = roost.workflow(
    "t-cc-cip", concurrency=Concurrency("input.repo", max_runs=1, strategy="cancel_in_progress")
)
cc_cip.task(name="cip_step")(_step)
cc_newest = roost.workflow(
    "t-cc-newest", concurrency=Concurrency("input.repo", max_runs=1, strategy="cancel_newest")
)
cc_newest.task(name="newest_step")(_step)

concurrent = roost.worker("concurrent", workflows=[rl_peruser, cc_rr, cc_cip, cc_newest], slots=16)

# -- the ratelimiter's benchmark (tests/bench/ratelimiter_bench.py) ------------------------
rl_bench = roost.workflow("t-rl-bench")


@rl_bench.task(rate_limits=[RateLimit("rl-bench")])
def limited_noop(input: dict, ctx: Context) -> dict:
    return {}


rl_bench_free = roost.workflow("t-rl-bench-free")


@rl_bench_free.task()
def free_noop(input: dict, ctx: Context) -> dict:
    return {}


rl_bencher = roost.worker("rl-bencher", workflows=[rl_bench, rl_bench_free], slots=8)

# -- structured logs (tests/e2e/test_logs.py) -------------------------------------------
json_logged = roost.workflow("t-json-logged")


@json_logged.task()
def refuse_loudly(input: dict, ctx: Context) -> dict:
    ctx.log("about to refuse")
    raise NonRetryableError("refused on purpose")


json_logger = roost.worker("json-logger", workflows=[json_logged], slots=2)

# -- standard logging inside tasks (tests/e2e/test_logs.py) -------------------------------
std_logged = roost.workflow("t-std-logged")
_app_log = logging.getLogger("myapp.agent")


@std_logged.task()
def clone(input: dict, ctx: Context) -> dict:
    _app_log.info("cloning %s", input["repo"])
    _app_log.debug("a detail nobody asked for")
    return {}


@std_logged.task(parents=[clone])
async def review(input: dict, ctx: Context) -> dict:
    await asyncio.sleep(0)
    _app_log.warning("review found %d issues", 2)
    return {}


std_logger = roost.worker("std-logger", workflows=[std_logged], slots=2)

# -- tracing (tests/e2e/test_tracing.py) -------------------------------------------------
traced = roost.workflow("t-traced")


@traced.task(rate_limits=[RateLimit("traced-sessions")])
def clone(input: dict, ctx: Context) -> dict:
    from opentelemetry import trace

    with trace.get_tracer(__name__).start_as_current_span("user.clone"):
        pass
    return {}


@traced.task(parents=[clone], retries=1, backoff_initial_seconds=0.1)
async def think(input: dict, ctx: Context) -> dict:
    from opentelemetry import trace

    with trace.get_tracer(__name__).start_as_current_span("user.think"):
        await asyncio.sleep(0)
    if ctx.attempt_number == 1:
        raise RuntimeError("the first attempt fails")
    return {}


tracer_worker = roost.worker("traced", workflows=[traced], slots=4)

# -- the span store (tests/e2e/test_trace_store.py) --------------------------------------
stored = roost.workflow("t-stored")


@stored.task()
def fetch(input: dict, ctx: Context) -> dict:
    from opentelemetry import trace

    with trace.get_tracer(__name__).start_as_current_span("user.fetch"):
        pass
    return {"n": 1}


@stored.task(parents=[fetch], retries=1, backoff_initial_seconds=0.1)
def left(input: dict, ctx: Context) -> dict:
    if ctx.attempt_number == 1:
        raise ValueError("left fails once")
    return {}


@stored.task(parents=[fetch])
async def right(input: dict, ctx: Context) -> dict:
    from opentelemetry import trace

    with trace.get_tracer(__name__).start_as_current_span("user.prepare"):
        pass
    # Long enough for the spans so far to reach a live subscriber before the run ends.
    await asyncio.sleep(float(input.get("linger", 0)))
    return {}


@stored.task(parents=[left, right])
def merge(input: dict, ctx: Context) -> dict:
    return {"merged": True}


stored_worker = roost.worker("stored", workflows=[stored], slots=4)

# -- the dashboard (tests/e2e/test_dashboard.py) ----------------------------------------
paced = roost.workflow("t-paced")


@paced.task()
def first(input: dict, ctx: Context) -> dict:
    time.sleep(float(input.get("pace", 0.6)))
    ctx.log("first is done")
    return {"step": 1}


@paced.task(parents=[first])
def second(input: dict, ctx: Context) -> dict:
    time.sleep(float(input.get("pace", 0.6)))
    return {"step": 2}


@paced.task(parents=[second])
def third(input: dict, ctx: Context) -> dict:
    time.sleep(float(input.get("pace", 0.6)))
    return {"step": 3}


@paced.task(parents=[third])
def fourth(input: dict, ctx: Context) -> dict:
    time.sleep(float(input.get("pace", 0.6)))
    ctx.log("fourth is done")
    return {"step": 4}


# -- a wide run: more spans than the dashboard's timeline draws at once --------------------
wide = roost.workflow("t-wide")


@wide.task()
def spread(input: dict, ctx: Context) -> dict:
    return {}


leaves = [wide.task(f"leaf{i:02d}", parents=[spread])(spread) for i in range(60)]


@wide.task(parents=leaves)
def gather(input: dict, ctx: Context) -> dict:
    return {"leaves": len(leaves)}


paced_worker = roost.worker("paced", workflows=[paced, wide], slots=4)


# -- a worker asked to stop while a task runs ---------------------------------------------
gated = roost.workflow("t-gated")


@gated.task()
def until_released(input: dict, ctx: Context) -> dict:
    """Marks that it started (a file named by its pid, holding its worker id), then runs
    until the test writes ``release`` into the same folder (or ``max_seconds`` pass)."""
    folder = Path(input["folder"])
    (folder / f"{os.getpid()}.started").write_text(ctx.worker_id)
    until = time.time() + float(input.get("max_seconds", 90))
    while not (folder / "release").exists() and time.time() < until:
        time.sleep(0.05)
    return {"worker_id": ctx.worker_id, "released": (folder / "release").exists()}


# No version here: tests give it one through ROOST_WORKER_VERSION.
drainer = roost.worker("drainer", workflows=[gated], slots=2)


# -- idle worker threads whose broker connections the broker closed (issue 15) -------------
napping = roost.workflow("t-napping")


@napping.task(execution_timeout=30)  # a watched deadline: `started` is sent at once
def nap(input: dict, ctx: Context) -> dict:
    time.sleep(float(input.get("seconds", 0)))
    return {"thread": f"{os.getpid()}:{threading.get_ident()}"}


napper = roost.worker("napper", workflows=[napping], slots=4)


# -- task messages lost on the broker: the scheduler's safety net sends them again ---------
purged = roost.workflow("t-purged")


@purged.task()
def outlive(input: dict, ctx: Context) -> dict:
    time.sleep(float(input.get("seconds", 0)))
    return {"attempt": ctx.attempt_number}


purged_worker = roost.worker("purged", workflows=[purged], slots=1)


# -- standalone tasks (@roost.task, issue #20): typed outputs, async, retries ---------------
class GreetIn(BaseModel):
    who: str


class Greeting(BaseModel):
    text: str
    pid: int


@dataclasses.dataclass
class Pair:
    a: int
    b: int


@dataclasses.dataclass
class PairSum:
    total: int
    a_was: int


@roost.task(name="t-sa-greet")
def sa_greet(input: GreetIn, ctx: Context) -> Greeting:
    return Greeting(text=f"hello {input.who}", pid=os.getpid())


@roost.task(name="t-sa-add")
async def sa_add(input: Pair, ctx: Context) -> PairSum:
    await asyncio.sleep(0)
    return PairSum(total=input.a + input.b, a_was=input.a)


@roost.task(name="t-sa-flaky", retries=2, backoff_initial_seconds=0.1)
def sa_flaky(input: dict, ctx: Context) -> dict:
    if ctx.attempt_number == 1:
        raise RuntimeError("the first attempt fails")
    return {"attempt": ctx.attempt_number}


# A child reads its parents' outputs as their return annotations type them.
class Plan(BaseModel):
    steps: list[str]
    made_at: datetime


@dataclasses.dataclass
class Tally:
    count: int


typed_parents = roost.workflow("t-typed-parents")


@typed_parents.task()
def make_plan(input: dict, ctx: Context) -> Plan:
    return Plan(steps=input["steps"], made_at=datetime.now(UTC))


@typed_parents.task()
async def tally(input: dict, ctx: Context) -> Tally:
    return Tally(count=len(input["steps"]))


@typed_parents.task(parents=[make_plan, tally])
def follow_plan(input: dict, ctx: Context) -> dict:
    """Says what it was given: the type of each parent's output, read from the task and
    by name, and the type of a field inside the model."""
    plan = ctx.task_output(make_plan)
    return {
        "plan": type(plan).__name__,
        "tally": type(ctx.task_output(tally)).__name__,
        "by_name": type(ctx.task_output("make_plan")).__name__,
        "made_at": type(getattr(plan, "made_at", None)).__name__,
    }


standalone = roost.worker(
    "standalone", workflows=[sa_greet, sa_add, sa_flaky, typed_parents], slots=4
)

# -- runs triggered from inside tasks join the task's trace (test_sdk_trace_context) -----
spawned = roost.workflow("t-spawned")


@spawned.task()
def spawned_step(input: dict, ctx: Context) -> dict:
    return {}


spawning = roost.workflow("t-spawning")


@spawning.task()
def spawn_sync(input: dict, ctx: Context) -> dict:
    return {"child": spawned.run({}, wait_for_result=False).id}


@spawning.task()
async def spawn_async(input: dict, ctx: Context) -> dict:
    ref = await spawned.aio_run({}, wait_for_result=False)
    return {"child": ref.id}


spawner = roost.worker("spawner", workflows=[spawning, spawned], slots=4)

# -- durable tasks (issue #18): a step, then a sleep that gives back the only slot -------
durable_sleep = roost.workflow("t-durable-sleep")


def _mark(marker: str, line: str) -> dict:
    """A side effect a test can count: one line per call."""
    with open(marker, "a") as f:
        f.write(line + "\n")
    return {"pid": os.getpid(), "t": time.time()}


@durable_sleep.durable_task(execution_timeout="60s")
async def durable_nap(input: dict, ctx: DurableContext) -> dict:
    marked = await ctx.step("mark", _mark, input["marker"], "step")
    await ctx.sleep_for(input.get("seconds", 3))
    return {
        "marked": marked,
        "woke": time.time(),
        "attempt": ctx.attempt_number,
        "pid": os.getpid(),
    }


durable_quick = roost.workflow("t-durable-quick")


@durable_quick.task()
def quick_one(input: dict, ctx: Context) -> dict:
    return {"t": time.time()}


durable_event = roost.workflow("t-durable-event")


@durable_event.durable_task(execution_timeout="60s")
async def await_ci(input: dict, ctx: DurableContext) -> dict:
    marked = await ctx.step("mark", _mark, input["marker"], "step")
    try:
        ci = await ctx.wait_for_event(
            input["key"], filter=f"payload.pr == {input['pr']}", timeout=input["timeout"]
        )
    except WaitTimeoutError:
        return {"timed_out": True, "marked": marked}
    return {"ci": ci.payload, "event_id": ci.id, "marked": marked}


durable_approval = roost.workflow("t-durable-approval")


@durable_approval.durable_task(execution_timeout="60s")
async def await_merge(input: dict, ctx: DurableContext) -> dict:
    marked = await ctx.step("mark", _mark, input["marker"], "step")
    try:
        ok = await ctx.wait_for_approval(
            f"Merge PR {input['pr']}?", details={"pr": input["pr"]}, timeout=input["timeout"]
        )
    except WaitTimeoutError:
        return {"timed_out": True, "marked": marked}
    return {
        "approved": ok.approved,
        "by": ok.by,
        "reason": ok.reason,
        "approval_id": ok.id,
        "at": ok.at.timestamp(),
        "marked": marked,
    }


durable_any = roost.workflow("t-durable-any")


@durable_any.durable_task(execution_timeout="60s")
async def await_either(input: dict, ctx: DurableContext) -> dict:
    ci = EventCondition(input["ci"], filter=f"payload.pr == {input['pr']}")
    got = await ctx.wait_for_any(events={"ci": ci, "closed": input["closed"]}, sleep=input["sleep"])
    return {"fired": got.name, "data": got.event.data if got.event else None}


durable_drift = roost.workflow("t-durable-drift")


@durable_drift.durable_task(execution_timeout="30s")
async def drifting(input: dict, ctx: DurableContext) -> dict:
    # Stands for code changed while the task slept: its replay names its step otherwise.
    name = "open-pr" if ctx.attempt_number == 1 else "open-pull-request"
    await ctx.step(name, time.time)
    await ctx.sleep_for(1)
    return {}


# One slot: an ordinary task can run only while the durable one waits.
sleeper = roost.worker(
    "sleeper",
    workflows=[
        durable_sleep,
        durable_quick,
        durable_event,
        durable_approval,
        durable_any,
        durable_drift,
    ],
    slots=1,
)

# -- a durable task in a concurrency group of one (issue #18: a waiting run gives back its
# place in the group, and takes one again before it resumes) ----------------------------
durable_group = roost.workflow(
    "t-durable-group", concurrency=Concurrency("input.group", max_runs=1)
)


@durable_group.durable_task(execution_timeout="60s")
async def hold_group(input: dict, ctx: DurableContext) -> dict:
    started = await ctx.step("start", time.time)
    if input.get("sleep"):
        await ctx.sleep_for(input["sleep"])
    resumed = time.time()
    if input.get("busy"):
        await asyncio.sleep(input["busy"])  # holds the group's place: it does not wait
    return {"started": started, "resumed": resumed, "ended": time.time()}


# Four slots: slots never keep these runs apart, only their group does.
grouped = roost.worker("grouped", workflows=[durable_group], slots=4)

# -- child runs (issue #18): a task that triggers runs of another workflow ----------------
child_flow = roost.workflow("t-child")


@child_flow.task()
def child_work(input: dict, ctx: Context) -> dict:
    if input.get("fail"):
        raise RuntimeError(f"child {input['n']} fails")
    until = time.time() + input.get("sleep", 0)
    while time.time() < until:  # a cancelled run interrupts it (TaskCancelledError)
        time.sleep(0.05)
    return {"n": input["n"], "meta": ctx.metadata}


parent_flow = roost.workflow("t-parent")


@parent_flow.task(retries=1, backoff_initial_seconds=0.2)
def fan_out(input: dict, ctx: Context) -> dict:
    inputs = [{"n": i, "sleep": input.get("sleep", 0)} for i in range(input["n"])]
    refs = child_flow.run_many(inputs)
    if input.get("fail_first") and ctx.attempt_number == 1:
        raise RuntimeError("fails after spawning its children")
    outputs = [r.result(timeout=120)["child_work"] for r in refs] if input.get("wait") else []
    return {
        "ids": [r.id for r in refs],
        "sum": sum(o["n"] for o in outputs),
        "metas": [o["meta"] for o in outputs],
    }


# Eight slots: a waiting parent holds one, its children use the rest.
family = roost.worker("family", workflows=[parent_flow, child_flow], slots=8)


# A durable parent: its children and the wait for them are durable calls, so it holds
# no slot while they run (its worker has only one).
durable_parent = roost.workflow("t-durable-parent")


@durable_parent.durable_task(execution_timeout="120s")
async def fan_in(input: dict, ctx: DurableContext) -> dict:
    marked = await ctx.step("mark", _mark, input["marker"], "step")
    inputs = [{"n": i, "fail": i in input.get("failing", [])} for i in range(input["n"])]
    refs = await child_flow.aio_run_many(inputs)
    try:
        outputs = await ctx.wait_for_runs(refs)
    except RunFailedError as exc:
        return {"failed": str(exc), "ids": [r.id for r in refs], "marked": marked}
    extra = await child_flow.aio_run({"n": 1000}, key="extra")
    return {
        "sum": sum(o["child_work"]["n"] for o in outputs),
        "extra": extra["child_work"]["n"],
        "ids": [r.id for r in refs],
        "marked": marked,
        "attempt": ctx.attempt_number,
    }


nursery = roost.worker("nursery", workflows=[durable_parent, child_flow], slots=1)


# Four slots for a thousand sleeping durable tasks and the ordinary tasks run meanwhile.
sleepers = roost.worker("sleepers", workflows=[durable_sleep, durable_quick], slots=4)


# -- task-level concurrency with two keys (issue #21): 2 per user, 8 overall ----------
task_cc = roost.workflow("t-task-cc")


@task_cc.task(concurrency=[Concurrency("input.user", max_runs=2), Concurrency("'all'", max_runs=8)])
def call_model(input: dict, ctx: Context) -> dict:
    start = time.time()
    time.sleep(0.3)
    return {"user": input["user"], "start": start, "end": time.time()}


cc_workers = roost.worker("cc-workers", workflows=[task_cc], slots=8)


# -- task-level concurrency strategies (issue #21): one attempt per user at a time -------
def _hold(input: dict, ctx: Context) -> dict:
    """Runs until the test writes ``release`` into ``input["folder"]`` (or ``max_seconds``
    pass), sleeping in short steps so that a cancel can interrupt it."""
    folder = Path(input["folder"])
    until = time.time() + float(input.get("max_seconds", 60))
    while not (folder / "release").exists() and time.time() < until:
        time.sleep(0.05)
    return {"user": input["user"], "released": (folder / "release").exists()}


task_newest = roost.workflow("t-task-newest")


@task_newest.task(
    retries=1, concurrency=Concurrency("input.user", max_runs=1, strategy="cancel_newest")
)
def hold_newest(input: dict, ctx: Context) -> dict:
    return _hold(input, ctx)


@task_newest.task(parents=[hold_newest])
def after_newest(input: dict, ctx: Context) -> dict:
    return {"after": True}


task_latest = roost.workflow("t-task-latest")


@task_latest.task(
    retries=1, concurrency=Concurrency("input.user", max_runs=1, strategy="cancel_in_progress")
)
def hold_latest(input: dict, ctx: Context) -> dict:
    return _hold(input, ctx)


cc_strategies = roost.worker("cc-strategies", workflows=[task_newest, task_latest], slots=8)


# -- worker labels (issue #21): declared, then changed at run time by a task ------------
relabel = roost.workflow("t-relabel")


@relabel.task()
def set_my_labels(input: dict, ctx: Context) -> dict:
    """Replaces the labels of the worker process it runs in with ``input["labels"]``;
    returns that process's id and its labels now."""
    labelled.set_labels(input["labels"])
    return {"worker_id": ctx.worker_id, "labels": labelled.labels}


labelled = roost.worker(
    "labelled", workflows=[relabel], slots=2, labels={"gpu": "a100", "memory_gb": 64}
)
