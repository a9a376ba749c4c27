"""The engine core: the one home of the run and task state machine, shared by every
service that changes runs. Each transition runs inside its caller's transaction, guarded
by (task run, attempt) and status, so a redelivered or duplicated message changes
nothing.

* ``decisions``: what the engine decides (retry or fail, how a run ends), as pure
  functions;
* ``state``: the runs a transaction has locked, what it produced, workflow definitions;
* ``reports``, ``reports_started``: a batch of worker reports (started, succeeded,
  failed) and what tasks emitted;
* ``ready``: ready attempts become task messages; retries whose backoff is over;
* ``failures``: a failed, timed-out or lost attempt is retried or fails its task;
* ``settle``: runs whose tasks have all settled end, or start their on_failure handler;
* ``timers``: deadlines, due retries and silent workers;
* ``redispatch``: attempts whose task message was lost are sent again;
* ``workers``: worker heartbeats;
* ``trigger``, ``concurrency``: new runs, and what a workflow's concurrency strategy
  cancels to make room for them;
* ``control``: cancelling a run, replaying an ended one;
* ``admit``, ``choose``: the ratelimiter's admission pass, and its pure choice of whom
  to admit; ``make_room``, ``strategies``: what full task-concurrency keys cancel
  (cancel_newest, cancel_in_progress) in that pass, and its pure decision;
* ``record``, ``batch``, ``trace``: the end of every transaction (events, admission,
  outbox, the run-final NOTIFY, decision spans);
* ``plan``: transitions written once for blocking and async connections alike.

Their SQL is in ``roost_core/sql/queries/*.sql``, a named statement each, with named
parameters (``roost_core.queries``).

The scheduler calls the transitions of worker reports and timers; the api those of
trigger, cancel and replay; the ratelimiter the admission pass.
"""
