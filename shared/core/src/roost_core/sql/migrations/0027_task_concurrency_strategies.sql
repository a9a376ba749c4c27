-- Task-level concurrency strategies (issue #21): what the ratelimiter does with an
-- attempt that does not fit a full key. 'wait' (group_round_robin, and every named,
-- window or dynamic rate-limit key): it waits its turn. 'cancel_newest': it is cancelled
-- instead of queued. 'cancel_in_progress': the key's oldest attempts are cancelled to make
-- room. Set by the dynamic upsert of a task's concurrency keys, like their limit.
ALTER TABLE rate_limits ADD COLUMN on_full text NOT NULL DEFAULT 'wait'
    CHECK (on_full IN ('wait', 'cancel_newest', 'cancel_in_progress'));
-- When the ratelimiter asked to cancel the attempt holding these units to make room
-- (cancel_in_progress): the units stay held until the attempt ends (so nothing is
-- over-admitted meanwhile), and the attempt is never asked twice. NULL otherwise.
ALTER TABLE rate_limit_holds ADD COLUMN cancelling_at timestamptz;
