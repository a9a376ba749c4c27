-- suspend_attempt --
-- A durable task's active attempt suspends to wait, once: the task run is WAITING, its
-- next attempt due when the wait is over (dispatch_at: the timer retries use), with the
-- durable calls it completed so far (journal). Returns the ended attempt's queued time,
-- the status it had and its placement (the resumed attempt is placed afresh).
UPDATE task_runs t SET status = %(waiting)s, attempt = t.attempt + 1, journal = %(journal)s,
  waiting = %(wait)s, worker_id = NULL, output = NULL, error = NULL, started_at = NULL,
  finished_at = NULL, queued_at = NULL, deadline_at = NULL,
  dispatch_at = to_timestamp(%(until)s), placed_on = NULL, placement = NULL
FROM (SELECT id, status, queued_at, placement FROM task_runs WHERE id = %(task_run_id)s) o
WHERE t.id = o.id AND t.attempt = %(attempt)s AND t.status = ANY(%(statuses)s)
  AND t.dispatch_at IS NULL
RETURNING o.queued_at, o.status, o.placement;

-- runs_without_active_tasks --
-- Of the given runs, those with no task QUEUED or RUNNING (every task left waits, or
-- waits for a parent that waits).
SELECT r.id FROM unnest(%(run_ids)b::uuid[]) AS r(id)
WHERE NOT EXISTS (
  SELECT 1 FROM task_runs t WHERE t.run_id = r.id AND t.status = ANY(%(statuses)s)
);

-- runs_needing_places --
-- Of the given runs, those with a concurrency group that neither hold a place in it nor
-- wait for one (they gave it back while a task waited), with their group keys.
SELECT r.id, r.concurrency_key FROM runs r
WHERE r.id = ANY(%(run_ids)b::uuid[]) AND r.concurrency_key IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM rate_limit_holds h WHERE h.task_run_id = r.id AND h.attempt = 0)
  AND NOT EXISTS (
    SELECT 1 FROM rate_limit_waiters w WHERE w.task_run_id = r.id AND w.attempt = 0
  );
