-- suspend_attempt --
-- A durable task's active attempt suspends to wait, once: the task run is WAITING, its
-- next attempt due when the wait is over (dispatch_at: the timer retries use), with the
-- durable calls it completed so far (journal). Returns the ended attempt's queued time
-- and the status it had.
UPDATE task_runs t SET status = %(waiting)s, attempt = t.attempt + 1, journal = %(journal)s,
  waiting = %(wait)s, worker_id = NULL, output = NULL, error = NULL, started_at = NULL,
  finished_at = NULL, queued_at = NULL, deadline_at = NULL,
  dispatch_at = to_timestamp(%(until)s)
FROM (SELECT id, status, queued_at FROM task_runs WHERE id = %(task_run_id)s) o
WHERE t.id = o.id AND t.attempt = %(attempt)s AND t.status = ANY(%(statuses)s)
  AND t.dispatch_at IS NULL
RETURNING o.queued_at, o.status;
