-- parent_task_runs --
-- The given task runs of the tenant (tasks that trigger child runs), with their run and
-- its metadata.
SELECT t.id::text, t.run_id::text, t.task_name, r.metadata FROM task_runs t
JOIN runs r ON r.id = t.run_id
WHERE t.id = ANY(%(ids)b::uuid[]) AND r.tenant_id = %(tenant_id)s;

-- run_family --
-- The task a run was triggered inside (with its run's workflow, null if that run is
-- gone), and the runs triggered inside the run's own tasks, oldest first.
SELECT
  (SELECT jsonb_build_object('run_id', p.parent_run_id, 'task', p.parent_task,
     'workflow', r.workflow_name, 'key', p.key)
   FROM run_parents p LEFT JOIN runs r ON r.id = p.parent_run_id
   WHERE p.run_id = %(run_id)s) AS parent,
  (SELECT coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'workflow', c.workflow_name,
     'status', c.status, 'task', p.parent_task, 'key', p.key, 'created_at', c.created_at)
     ORDER BY c.created_at, c.id), '[]'::jsonb)
   FROM run_parents p JOIN runs c ON c.id = p.run_id
   WHERE p.parent_run_id = %(run_id)s) AS children;
