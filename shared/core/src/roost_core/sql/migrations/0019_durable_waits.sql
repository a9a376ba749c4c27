-- Durable tasks (issue #18), first slice: a task that sleeps is WAITING, holding no
-- worker slot and no units, until dispatch_at (the timer retries use); then its next
-- attempt is sent with the durable calls it completed so far, which it replays.

-- Every durable call the task run completed (steps with their results, sleeps with
-- their wake times), in order: what a resumed or retried attempt replays. NULL for
-- ordinary tasks.
ALTER TABLE task_runs ADD COLUMN journal jsonb;
-- What a WAITING task waits for ({"reason": "sleep", "until": unix seconds}), shown on
-- the task; NULL otherwise.
ALTER TABLE task_runs ADD COLUMN waiting jsonb;
