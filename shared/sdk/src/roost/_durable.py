"""Durable tasks on the worker (issue #18): ``ctx.step``, the sleeps,
``ctx.wait_for_event`` and ``ctx.wait_for_approval``, by replay.

A durable task is an ``async def`` declared with ``@wf.durable_task``. Each of its
*durable calls* (a step, a sleep, an event wait) takes the next number of a cursor,
``seq``. A step runs its function once and records its JSON result; a sleep records its
wake time and suspends the attempt: ``WaitRequested`` escapes the task, the worker
reports ``TaskWaiting`` with every durable call completed so far (the journal), and
returns, so the attempt gives back its slot like any finished one. An event wait
(and an approval) suspends the same way with an entry whose result is None; the engine
writes the event (the decision) that ends it into that entry, or leaves it None once its
timeout passed. When the wait
is over the engine dispatches a new attempt with that journal, which runs the function
again from the top:
each durable call it makes is matched, by its number, against the recorded one, and
gets the recorded result back instead of running again. A call that does not match
(other kind or name) means the code is no longer the code that made the journal, and
the attempt fails with ``NonDeterminismError`` naming the call.

So a task's code between durable calls must be deterministic: whatever must happen once,
or may return something else next time (the clock, randomness, I/O), goes in a step.
Durable calls are awaited one at a time.
"""

from __future__ import annotations

import copy
import inspect
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, ParamSpec

from roost import _approvals as approvals
from roost import _durable_children as durable_children
from roost import _durable_values as values
from roost import _durations as durations
from roost import _event_waits as event_waits
from roost._approvals import Approval
from roost._context import Context, Emit, _no_emit
from roost._durations import Duration
from roost._errors import NonDeterminismError, WaitTimeoutError
from roost._event_waits import EventCondition, Fired, WaitedEvent
from roost._runs import RunRef
from roost_core.wire import ApprovalAsk, DurableCall, EventWait, TaskMessage

P = ParamSpec("P")
Kind = Literal["step", "sleep", "event", "approval", "spawn", "join", "any"]
WaitReason = Literal["sleep", "event", "approval", "children", "any"]

# What a sleep is named in the journal: sleeps are told apart by their number only.
SLEEP = "sleep"


class WaitRequested(BaseException):  # noqa: N818 (a signal, not an error)
    """Raised by a durable call that must wait: the attempt ends, reported as
    ``TaskWaiting`` with ``journal`` (every durable call completed so far, the wait
    included), and the task resumes by replaying it at ``until`` (unix seconds), or, for
    an event wait (``event`` says which event), when that event comes, if sooner; for an
    approval (``approval`` says what is asked), when a person decides, if sooner; a wait
    without a timeout has no ``until``.

    Not an Exception, so that a task's ``except Exception`` does not swallow the
    suspension (as with asyncio.CancelledError); it passes through Dramatiq's event-loop
    thread as any exception of a coroutine does (roost._attempt)."""

    def __init__(
        self,
        task: str,
        journal: list[DurableCall],
        until: float | None,
        reason: WaitReason,
        event: EventWait | None = None,
        approval: ApprovalAsk | None = None,
        children: list[str] | None = None,
        events: list[EventWait] | None = None,
    ) -> None:
        what = reason if event is None else f"event {event.key!r}"
        if approval is not None:
            what = f"approval {approval.question!r}"
        if children is not None:
            what = f"{len(children)} child run(s)"
        if events is not None:
            timer = [] if until is None else ["sleep"]
            what = "any of " + ", ".join([*(e.name for e in events), *timer])
        when = "with no timeout" if until is None else f"until {values.iso(until)}"
        super().__init__(f"task {task!r} waits ({what}) {when}")
        self.journal = journal
        self.until = until
        self.reason: WaitReason = reason
        self.event = event
        self.approval = approval
        self.children = children
        self.events = events


class DurableContext(Context):
    """Passed to a durable task (``@wf.durable_task``) instead of a Context: everything a
    Context does, plus the durable calls ``step``, ``sleep_for``, ``sleep_until``,
    ``wait_for_event``, ``wait_for_approval`` and ``wait_for_runs``; child runs
    triggered in it (``await wf.aio_run(...)``) are durable calls too."""

    def __init__(
        self,
        message: TaskMessage,
        worker_id: str,
        emit: Emit = _no_emit,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(message, worker_id, emit)
        self._clock = clock  # unix seconds; a test may pass its own
        # The calls completed by earlier attempts, by number: what a replay gets back.
        self._recorded: dict[int, DurableCall] = {c.seq: c for c in message.journal}
        self._new: list[DurableCall] = []  # completed in this attempt, not yet reported
        self._seq = 0
        # Once a replay has diverged, every later durable call, and the task's return,
        # fail with the same error: a task that caught it must not go on.
        self._diverged: NonDeterminismError | None = None

    @property
    def seq(self) -> int:
        """The number the next durable call will take (0 for the first)."""
        return self._seq

    @property
    def durable_calls(self) -> list[DurableCall]:
        """Every durable call completed so far, earlier attempts' included, by number."""
        return sorted([*self._recorded.values(), *self._new], key=lambda c: c.seq)

    async def step(
        self, name: str, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` (awaited if it is async) once, and return its
        result as JSON: a pydantic model or a dataclass comes back as its dict, a tuple
        as a list, the same on the first run as on every replay, so the task's code sees
        one value either way. When the task resumes, the recorded result is returned and
        ``fn`` is not called again; ``name`` must be the one the step was recorded with.

        A sync ``fn`` runs on the event loop's thread, as the task's own code does: wrap
        long blocking work in ``asyncio.to_thread``. If ``fn`` raises, nothing is
        recorded and the exception goes on up (a retried attempt runs the step again)."""
        if not isinstance(name, str):
            raise TypeError(f"a step's name is a string, not {name!r}")
        if not name:
            raise ValueError("a step's name must not be empty: it identifies the step on replay")
        seq, recorded = self._claim("step", name)
        if recorded is not None:
            return copy.deepcopy(recorded.result)  # the task may change what it gets
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        text = values.json_text(result, f"step {name!r} of task {self.task_name!r}")
        self._new.append(DurableCall(seq=seq, kind="step", name=name, result=json.loads(text)))
        return json.loads(text)

    async def sleep_for(self, duration: Duration) -> None:
        """Suspend the task for ``duration`` (seconds, a timedelta, or "10m"), holding no
        worker slot and no rate-limit units meanwhile; it resumes by replaying (see the
        module's doc). Returns once the time has passed."""
        seconds = durations.seconds(duration, "sleep_for")
        assert seconds is not None
        await self._sleep(lambda now: now + seconds)

    async def sleep_until(self, when: datetime | float) -> None:
        """As ``sleep_for``, until ``when``: an aware datetime, or unix seconds. A time
        already past returns at once (and is recorded, so that a replay lines up)."""
        until = values.instant(when, "sleep_until")
        await self._sleep(lambda now: until)

    async def wait_for_event(
        self,
        key: str,
        *,
        filter: str | None = None,
        timeout: Duration | None = None,
        since: datetime | float | None = None,
    ) -> WaitedEvent:
        """Suspend the task until an event is pushed with ``key``
        (``roost.events.push(key, data)``), holding no worker slot meanwhile, and return
        it. The event must be pushed at or after ``since`` (an aware datetime or unix
        seconds: a lookback; None, the default, is the moment this wait is first made),
        and its data must pass ``filter``, a CEL expression over ``payload`` (the data):
        ``"payload.pr == 7"``. Each event ends one wait at most.

        ``timeout`` (seconds, a timedelta, or "24h"; None: wait for ever) past with no
        event raises ``WaitTimeoutError`` here, which the task may catch to go on. A bad
        key or filter raises ValueError naming it, at the call."""
        key = event_waits.checked_key(key)
        filter = event_waits.checked_filter(filter)
        seconds = durations.seconds(timeout, f"wait_for_event {key!r}: timeout")
        lookback = None if since is None else values.instant(since, "wait_for_event's since")
        seq, recorded = self._claim("event", key)
        now = self._clock()
        if recorded is None:  # a new wait: recorded once the engine answers it
            until = None if seconds is None else now + seconds
            call = DurableCall(seq=seq, kind="event", name=key, until=until)
            wait = EventWait(key=key, filter=filter, since=now if lookback is None else lookback)
            raise WaitRequested(self.task_name, [*self.durable_calls, call], until, "event", wait)
        if recorded.result is not None:  # the event that ended it
            return event_waits.waited(copy.deepcopy(recorded.result))
        until = recorded.until
        if until is not None and now >= until:
            raise WaitTimeoutError(
                f"task {self.task_name!r}, durable call #{seq}: wait_for_event {key!r} "
                f"timed out at {values.iso(until)} with no event",
                key,
                until,
            )
        # Resumed early (a clock behind the engine's): wait again, from when it began,
        # which the same timeout, given again by deterministic code, tells.
        if lookback is None:
            began = now if until is None or seconds is None else until - seconds
            lookback = min(began, now)
        wait = EventWait(key=key, filter=filter, since=lookback)
        raise WaitRequested(self.task_name, self.durable_calls, until, "event", wait)

    async def wait_for_approval(
        self, question: str, *, details: Any = None, timeout: Duration | None = None
    ) -> Approval:
        """Ask a person ``question`` and suspend the task, holding no worker slot, until
        they approve or reject it (``roost approvals``, ``POST
        /api/v1/approvals/{id}/approve``, the dashboard's Approvals page), and return
        the decision: ``.approved``, ``.by`` (the deciding API token's name),
        ``.reason``, ``.at``. A rejection is returned, not raised. ``details`` (any
        JSON) is shown beside the question.

        ``timeout`` (seconds, a timedelta, or "1d"; None: wait for ever) past with no
        decision raises ``WaitTimeoutError`` here, which the task may catch; a decision
        after that is refused. On replay the question must be the one recorded."""
        question = approvals.checked_question(question)
        if details is not None:
            details = json.loads(
                values.json_text(details, f"wait_for_approval {question!r}: details")
            )
        seconds = durations.seconds(timeout, f"wait_for_approval {question[:40]!r}: timeout")
        seq, recorded = self._claim("approval", question)
        now = self._clock()
        ask = ApprovalAsk(question=question, details=details)
        if recorded is None:  # a new question: recorded once a person answers it
            until = None if seconds is None else now + seconds
            call = DurableCall(seq=seq, kind="approval", name=question, until=until)
            raise WaitRequested(
                self.task_name, [*self.durable_calls, call], until, "approval", approval=ask
            )
        if recorded.result is not None:  # the decision
            return approvals.decided(copy.deepcopy(recorded.result))
        until = recorded.until
        if until is not None and now >= until:
            raise WaitTimeoutError(
                f"task {self.task_name!r}, durable call #{seq}: wait_for_approval "
                f"{question!r} timed out at {values.iso(until)} with no decision",
                until=until,
            )
        # Resumed early (a clock behind the engine's): the same question waits on.
        raise WaitRequested(self.task_name, self.durable_calls, until, "approval", approval=ask)

    async def wait_for_any(
        self,
        *,
        sleep: Duration | None = None,
        until: datetime | float | None = None,
        events: Mapping[str, EventCondition | str] | None = None,
        since: datetime | float | None = None,
    ) -> Fired:
        """Suspend the task, holding no worker slot, until the first of several things:
        an event of one of the named ``events`` branches (``{"ci": EventCondition(
        "ci:done", filter="payload.pr == 7"), "closed": "pr:closed"}``), or the timer
        (``sleep`` from now, or ``until`` an instant). Returns which one: ``Fired(name,
        event)``, ``name`` the branch's, or ``"sleep"`` for the timer (no error: the
        timer is a branch like the others). Each event branch is judged as
        ``wait_for_event`` judges its wait (``since`` is their lookback); the event that
        ends the wait is consumed, the other branches take none."""
        branches = event_waits.checked_branches(events)
        if sleep is not None and until is not None:
            raise ValueError("wait_for_any takes sleep= or until=, not both")
        seconds = durations.seconds(sleep, "wait_for_any: sleep")
        deadline = None if until is None else values.instant(until, "wait_for_any's until")
        if not branches and seconds is None and deadline is None:
            raise ValueError("wait_for_any needs a branch: events=, sleep= or until=")
        lookback = None if since is None else values.instant(since, "wait_for_any's since")
        timed = seconds is not None or deadline is not None
        name = ",".join(sorted([*branches, *([event_waits.SLEEP_BRANCH] if timed else [])]))
        seq, recorded = self._claim("any", name)
        now = self._clock()
        if recorded is not None and recorded.result is not None:
            return event_waits.fired(copy.deepcopy(recorded.result))
        if recorded is not None:
            due = recorded.until
            if due is not None and now >= due:
                return event_waits.Fired(name=event_waits.SLEEP_BRANCH)
            began = now if due is None or seconds is None else min(now, due - seconds)
            waits = _branch_waits(branches, began if lookback is None else lookback)
            raise WaitRequested(self.task_name, self.durable_calls, due, "any", events=waits)
        due = deadline if seconds is None else now + seconds
        call = DurableCall(seq=seq, kind="any", name=name, until=due)
        waits = _branch_waits(branches, now if lookback is None else lookback)
        raise WaitRequested(self.task_name, [*self.durable_calls, call], due, "any", events=waits)

    async def wait_for_runs(self, refs: Sequence[RunRef | str]) -> list[dict[str, Any]]:
        """Suspend the task, holding no worker slot, until every run of ``refs`` (RunRefs
        or run ids, typically child runs from ``await wf.aio_run_many(...)``) has ended,
        and return each one's outputs by task name, in order. Raises RunFailedError (or
        RunCancelledError) for the first that did not succeed, as ``ref.result()``
        does; the outcomes are recorded, so a replay raises or returns the same."""
        return await durable_children.join(self, refs)

    async def _sleep(self, wake_time: Callable[[float], float]) -> None:
        seq, recorded = self._claim("sleep", SLEEP)
        now = self._clock()
        if recorded is not None:
            until = now if recorded.until is None else recorded.until
            if now >= until:
                return  # the sleep is over: the replay goes on past it
            # Resumed early (a clock ahead of the engine's): wait again, for the rest.
            raise WaitRequested(self.task_name, self.durable_calls, until, "sleep")
        until = wake_time(now)
        call = DurableCall(seq=seq, kind="sleep", name=SLEEP, until=until)
        self._new.append(call)
        if until <= now:
            return
        raise WaitRequested(self.task_name, self.durable_calls, until, "sleep")

    def _claim(self, kind: Kind, name: str) -> tuple[int, DurableCall | None]:
        """Take the next number for a durable call: it and the call recorded under it,
        if any, which must be the same call."""
        if self._diverged is not None:
            raise self._diverged
        seq = self._seq
        self._seq += 1
        recorded = self._recorded.get(seq)
        if recorded is not None and (recorded.kind, recorded.name) != (kind, name):
            self._diverged = NonDeterminismError(
                f"task {self.task_name!r}, durable call #{seq}: the task recorded "
                f"{values.described(recorded.kind, recorded.name)} but now makes "
                f"{values.described(kind, name)}. Its code no longer matches its journal: a "
                "replay must make the same durable calls in the same order"
            )
            raise self._diverged
        return seq, recorded

    def _check_returned(self) -> None:
        """Called by the worker once the task returned: a replay that diverged (and was
        caught), or that returned before making every recorded call, fails."""
        if self._diverged is not None:
            raise self._diverged
        missing = [seq for seq in self._recorded if seq >= self._seq]
        if missing:
            first = self._recorded[min(missing)]
            raise NonDeterminismError(
                f"task {self.task_name!r}, durable call #{first.seq}: the task recorded "
                f"{values.described(first.kind, first.name)} but now returns without making it."
                " Its code no longer matches its journal"
            )


def _branch_waits(branches: Mapping[str, EventCondition], since: float) -> list[EventWait]:
    return [EventWait(key=c.key, filter=c.filter, since=since, name=n) for n, c in branches.items()]
