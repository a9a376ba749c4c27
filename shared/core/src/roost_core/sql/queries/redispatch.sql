-- runs_of_task_runs --
-- The runs the given task runs belong to.
SELECT DISTINCT run_id::text FROM task_runs WHERE id = ANY(%(task_run_ids)b::uuid[]);

-- requeue_lost_attempts --
-- The given attempts that are still the current QUEUED attempt of a live run start
-- their grace again, to be sent once more (a durable task's with its durable calls).
UPDATE task_runs t SET queued_at = now()
FROM unnest(%(task_run_ids)b::uuid[], %(attempts)b::int[]) AS v(id, attempt)
WHERE t.id = v.id AND t.attempt = v.attempt AND t.status = %(queued)s
  AND t.dispatch_at IS NULL AND t.run_id = ANY(%(run_ids)b::uuid[])
RETURNING t.id, t.run_id, t.task_name, t.attempt, t.journal;
