-- lock_run --
-- Locks one of the tenant's runs, with its workflow version's definition.
SELECT r.id::text, r.status, r.input, r.workflow_name, r.tenant_id::text,
  r.concurrency_key, r.trace, v.definition, r.metadata, r.desired_labels, r.priority
FROM runs r
JOIN workflow_versions v ON v.id = r.workflow_version_id
WHERE r.id = %(run_id)s AND r.tenant_id = %(tenant_id)s FOR UPDATE OF r;

-- cancel_tasks --
-- Every task of a run not yet final ends CANCELLED (a waiting durable task's wait ends).
UPDATE task_runs SET status = %(cancelled)s, error = %(error)s, finished_at = now(),
  dispatch_at = NULL, deadline_at = NULL, waiting = NULL
WHERE run_id = %(run_id)s AND status = ANY(%(statuses)s)
RETURNING id, attempt, status, worker_id, queued_at, started_at, task_name;

-- record_cancelled_attempts --
-- The attempts that were on a queue or a worker end CANCELLED in the record too.
INSERT INTO task_attempts (task_run_id, attempt, status, worker_id, error,
  queued_at, started_at, finished_at)
SELECT v.id, v.a, %(cancelled)s, v.w, %(error)s, v.q, v.s, now()
FROM unnest(%(task_run_ids)b::uuid[], %(attempts)b::int[], %(worker_ids)b::text[],
  %(queued_at)b::timestamptz[], %(started_at)b::timestamptz[]) AS v(id, a, w, q, s)
ON CONFLICT DO NOTHING;

-- cancel_run --
-- A run ends CANCELLED, with the outputs of the tasks that succeeded.
UPDATE runs SET status = %(cancelled)s, finished_at = now(), remaining_tasks = 0,
  error = %(error)s, output = (SELECT jsonb_object_agg(task_name, output) FROM task_runs
    WHERE run_id = %(run_id)s AND status = %(succeeded)s)
WHERE id = %(run_id)s;

-- delete_task_run --
-- Drops a run's task run (its failure handler, which runs again only if the replay
-- fails too).
DELETE FROM task_runs WHERE run_id = %(run_id)s AND task_name = %(task)s;

-- task_results --
-- How each task of a run ended.
SELECT task_name, status, output FROM task_runs WHERE run_id = %(run_id)s;

-- reset_tasks --
-- The tasks a replay runs again start over: queued at once if no parent is still to
-- run, with their whole retry budget again (retry_base), attempt numbers going on, and
-- no durable calls to replay (a durable task starts from scratch).
UPDATE task_runs t SET status = CASE WHEN v.pending = 0 THEN %(queued)s ELSE %(pending)s END,
  pending_parents = v.pending, output = NULL, error = NULL, worker_id = NULL,
  journal = NULL, waiting = NULL,
  started_at = NULL, finished_at = NULL, dispatch_at = NULL, deadline_at = NULL,
  retry_base = t.attempt,
  attempt = CASE WHEN v.pending = 0 THEN t.attempt + 1 ELSE t.attempt END,
  queued_at = CASE WHEN v.pending = 0 THEN now() END
FROM unnest(%(tasks)b::text[], %(pending_parents)b::int[]) AS v(name, pending)
WHERE t.run_id = %(run_id)s AND t.task_name = v.name
RETURNING t.id, t.task_name, t.attempt, v.pending;

-- restart_run --
-- A replayed run runs again.
UPDATE runs SET status = %(running)s, remaining_tasks = %(remaining)s, finished_at = NULL,
  error = NULL, output = NULL
WHERE id = %(run_id)s;

-- task_run_of --
-- One task of a run: its task run, status, current attempt, and whether that attempt
-- waits out a retry's backoff.
SELECT id, status, attempt, dispatch_at IS NOT NULL FROM task_runs
WHERE run_id = %(run_id)s AND task_name = %(task)s;

-- hold_retry --
-- A task waiting out its retry's backoff (QUEUED), or a durable task waiting (WAITING),
-- is never sent now: the cancel the scheduler is asked to apply ends it.
UPDATE task_runs SET dispatch_at = NULL
WHERE id = %(task_run_id)s AND status = ANY(%(statuses)s);

-- cancel_pending_tasks --
-- A pending task and its pending descendants end CANCELLED before they start: the task
-- with its own error, each descendant with the upstream one.
UPDATE task_runs SET status = %(cancelled)s, finished_at = now(),
  error = CASE WHEN task_name = %(task)s THEN %(error)s::jsonb ELSE %(upstream)s::jsonb END
WHERE run_id = %(run_id)s AND task_name = ANY(%(tasks)s) AND status = %(pending)s
RETURNING task_name;

-- count_cancelled --
-- Tasks that ended before starting count as settled against their run.
UPDATE runs SET remaining_tasks = remaining_tasks - %(n)s WHERE id = %(run_id)s;

-- active_child_runs --
-- The runs triggered inside a run's tasks that have not ended, in id order (the order
-- runs are locked in).
SELECT p.run_id::text FROM run_parents p JOIN runs r ON r.id = p.run_id
WHERE p.parent_run_id = %(run_id)s AND r.status IN ('QUEUED', 'RUNNING')
ORDER BY p.run_id;

-- lock_family --
-- Locks a run and every run triggered inside its tasks, and theirs (child runs), in id
-- order, the order every engine transaction locks runs in: cancelling a family never
-- deadlocks with a scheduler batch holding one of its runs.
WITH RECURSIVE family(id) AS (
  SELECT %(run_id)s::uuid
  UNION
  SELECT p.run_id FROM run_parents p JOIN family f ON p.parent_run_id = f.id
)
SELECT r.id FROM runs r JOIN family f ON f.id = r.id
WHERE r.tenant_id = %(tenant_id)s
ORDER BY r.id FOR UPDATE OF r;
