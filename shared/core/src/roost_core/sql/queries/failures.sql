-- end_failed_attempt --
-- Ends the current active attempt of a task run as failed or timed out, once (a
-- waiting durable task's wait ends with it; so may an attempt waiting for a worker to
-- place it on); returns its times, worker, the status it had and its placement.
UPDATE task_runs SET status = %(status)s, error = %(error)s, waiting = NULL,
  worker_id = coalesce(%(worker_id)s, worker_id),
  started_at = coalesce(to_timestamp(%(started_at)s), started_at),
  finished_at = coalesce(to_timestamp(%(finished_at)s), now()), deadline_at = NULL,
  dispatch_at = NULL
WHERE id = %(task_run_id)s AND attempt = %(attempt)s AND status = ANY(%(statuses)s)
  AND (dispatch_at IS NULL OR placement ? 'waits')
RETURNING queued_at, started_at, finished_at, worker_id,
  (SELECT o.status FROM task_runs o WHERE o.id = task_runs.id), placement;

-- record_failed_attempt --
-- Keeps an ended attempt in the task's history.
INSERT INTO task_attempts (task_run_id, attempt, status, worker_id, error, queued_at,
  started_at, finished_at, placement)
VALUES (%(task_run_id)s, %(attempt)s, %(status)s, %(worker_id)s, %(error)s, %(queued_at)s,
  %(started_at)s, %(finished_at)s, %(placement)s)
ON CONFLICT DO NOTHING;

-- count_failures --
-- A task run's failures and lost-worker attempts since its last replay (a durable
-- task's attempts that ended to wait are neither).
SELECT count(*) FILTER (WHERE a.error->>'type' IS DISTINCT FROM %(worker_lost)s),
  count(*) FILTER (WHERE a.error->>'type' = %(worker_lost)s)
FROM task_attempts a JOIN task_runs t ON t.id = a.task_run_id
WHERE a.task_run_id = %(task_run_id)s AND a.attempt > t.retry_base
  AND a.status <> 'WAITING';

-- schedule_retry --
-- A task run's next attempt, queued once its backoff is over.
UPDATE task_runs SET status = %(queued)s, attempt = %(attempt)s, output = NULL,
  worker_id = NULL, started_at = NULL, finished_at = NULL, queued_at = NULL,
  dispatch_at = now() + make_interval(secs => %(delay)s)
WHERE id = %(task_run_id)s;

-- cancel_descendants --
-- The pending descendants of a task that failed for good never start.
UPDATE task_runs SET status = %(cancelled)s, error = %(error)s, finished_at = now()
WHERE run_id = %(run_id)s AND task_name = ANY(%(tasks)s) AND status = %(pending)s
RETURNING task_name;
