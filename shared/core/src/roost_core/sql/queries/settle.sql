-- count_settled --
-- Counts tasks that settled against their runs; returns what each run has left.
UPDATE runs SET remaining_tasks = remaining_tasks - v.n
FROM unnest(%(run_ids)b::uuid[], %(settled)b::int[]) AS v(id, n) WHERE runs.id = v.id
RETURNING runs.id, runs.remaining_tasks;

-- tasks_of_runs --
-- Every task of the given runs, with how it ended.
SELECT run_id, task_name, status, output, error FROM task_runs
WHERE run_id = ANY(%(run_ids)b::uuid[]);

-- end_runs --
-- Runs end, a batch's in one statement (issue #17: one UPDATE per run was 4% of
-- PostgreSQL's time in bulk): each with its final status, its output (JSON text; 'null'
-- for none) and its error (JSON text, or NULL).
UPDATE runs SET status = v.status, output = v.output::jsonb, error = v.error::jsonb,
  finished_at = now()
FROM unnest(%(run_ids)b::uuid[], %(statuses)b::text[], %(outputs)b::text[],
  %(errors)b::text[]) AS v(id, status, output, error)
WHERE runs.id = v.id;

-- queue_on_failure --
-- A run's on_failure handler, queued as a task run of its own.
INSERT INTO task_runs (id, run_id, task_name, parents, pending_parents, status,
  attempt, queued_at, deadline_at)
VALUES (%(task_run_id)s, %(run_id)s, %(task)s, '{}', 0, %(queued)s, 1, now(),
  to_timestamp(%(deadline)s));

-- one_task_remaining --
-- The run now waits for its on_failure handler alone.
UPDATE runs SET remaining_tasks = 1 WHERE id = %(run_id)s;
