-- add_child_waits --
-- A durable task waits for child runs to end (at its durable call `seq`): a row per
-- child, each dropped once the child is seen ended.
INSERT INTO child_waits (task_run_id, child_run_id, run_id, seq)
SELECT %(task_run_id)s, c.id, t.run_id, %(seq)s
FROM unnest(%(children)b::uuid[]) AS c(id) JOIN task_runs t ON t.id = %(task_run_id)s
ON CONFLICT DO NOTHING;

-- child_waits_with_ended --
-- Waiting tasks with a child run that has ended and not yet been taken (a batch), with
-- their runs.
SELECT DISTINCT w.task_run_id, w.run_id::text FROM child_waits w
JOIN runs r ON r.id = w.child_run_id
WHERE r.status = ANY(%(ended)s)
LIMIT 200;

-- take_ended_children --
-- The given tasks' children that have ended are no longer waited for.
DELETE FROM child_waits w USING runs r
WHERE w.task_run_id = ANY(%(task_run_ids)b::uuid[]) AND r.id = w.child_run_id
  AND r.status = ANY(%(ended)s);

-- children_left --
-- Of the given tasks, those still waiting for a child run.
SELECT DISTINCT task_run_id FROM child_waits WHERE task_run_id = ANY(%(task_run_ids)b::uuid[]);

-- child_outcomes --
-- How the given child runs ended, with their failed tasks' errors.
SELECT r.id::text, r.workflow_name, r.status, r.output,
  (SELECT coalesce(jsonb_agg(jsonb_build_object('name', t.task_name, 'status', t.status,
     'error', t.error) ORDER BY t.task_name), '[]'::jsonb)
   FROM task_runs t WHERE t.run_id = r.id AND t.status IN ('FAILED', 'TIMED_OUT')) AS failed
FROM runs r WHERE r.id = ANY(%(run_ids)b::uuid[]);

-- drop_child_waits --
-- Waits that are over, or whose task no longer waits.
DELETE FROM child_waits WHERE task_run_id = ANY(%(task_run_ids)b::uuid[]);
