-- parent_task_runs --
-- The given task runs of the tenant (tasks that trigger child runs), with their run and
-- its metadata.
SELECT t.id::text, t.run_id::text, t.task_name, r.metadata FROM task_runs t
JOIN runs r ON r.id = t.run_id
WHERE t.id = ANY(%(ids)b::uuid[]) AND r.tenant_id = %(tenant_id)s;

-- run_family --
-- The task a run was triggered inside (with its run's workflow, null if that run is
-- gone); the first 100 runs triggered inside the run's own tasks, in the order they were
-- triggered; and how many it has in each status.
SELECT
  (SELECT jsonb_build_object('run_id', p.parent_run_id, 'task', p.parent_task,
     'workflow', r.workflow_name, 'key', p.key)
   FROM run_parents p LEFT JOIN runs r ON r.id = p.parent_run_id
   WHERE p.run_id = %(run_id)s) AS parent,
  (SELECT coalesce(jsonb_agg(jsonb_build_object('id', f.id, 'workflow', f.workflow_name,
     'status', f.status, 'task', f.parent_task, 'key', f.key, 'created_at', f.created_at)
     ORDER BY f.n), '[]'::jsonb)
   FROM (SELECT c.id, c.workflow_name, c.status, p.parent_task, p.key, c.created_at, p.n
         FROM run_parents p JOIN runs c ON c.id = p.run_id
         WHERE p.parent_run_id = %(run_id)s ORDER BY p.n LIMIT 100) f) AS children,
  (SELECT coalesce(jsonb_object_agg(s.status, s.n), '{}'::jsonb)
   FROM (SELECT c.status, count(*) AS n FROM run_parents p JOIN runs c ON c.id = p.run_id
         WHERE p.parent_run_id = %(run_id)s GROUP BY c.status) s) AS children_by_status;
