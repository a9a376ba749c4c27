-- approval --
-- (A fragment, to which conditions are added.) A tenant's approvals, with their run's
-- workflow and their task's name and status (a pending one whose task ended shows
-- CANCELLED).
SELECT a.id, a.run_id, r.workflow_name AS workflow, t.task_name AS task, a.question,
  a.details, a.status, t.status AS task_status, a.created_at, a.expires_at, a.decided_at,
  a.decided_by, a.reason
FROM approvals a JOIN task_runs t ON t.id = a.task_run_id JOIN runs r ON r.id = a.run_id
WHERE a.tenant_id = %(tenant_id)s

-- approval_by_id --
-- One of a tenant's approvals.
{{approval}} AND a.id = %(id)s;
