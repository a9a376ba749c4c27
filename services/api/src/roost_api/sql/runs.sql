-- newest_run_event --
-- The newest event of a run: a client following its events from here misses nothing.
SELECT max(id) AS last FROM events WHERE run_id = %(run_id)s AND tenant_id = %(tenant_id)s;

-- run_with_definition --
-- One of a tenant's runs, with its workflow version and definition.
SELECT r.*, v.version, v.definition FROM runs r JOIN workflow_versions v
  ON v.id = r.workflow_version_id
WHERE r.id = %(run_id)s AND r.tenant_id = %(tenant_id)s;

-- run_task_runs --
-- A run's task runs.
SELECT * FROM task_runs WHERE run_id = %(run_id)s;

-- run_attempts --
-- The recorded attempts of a run's tasks, in attempt order.
SELECT a.* FROM task_attempts a JOIN task_runs t ON t.id = a.task_run_id
WHERE t.run_id = %(run_id)s ORDER BY a.attempt;

-- run_status --
-- A run's status.
SELECT status FROM runs WHERE id = %(run_id)s;

-- runs_page --
-- (A fragment, to which the list's filters are added.) A tenant's runs with their
-- workflow version.
SELECT r.*, v.version FROM runs r
JOIN workflow_versions v ON v.id = r.workflow_version_id WHERE r.tenant_id = %(tenant_id)s

-- run_exists --
-- Whether the tenant has this run.
SELECT 1 FROM runs WHERE id = %(run_id)s AND tenant_id = %(tenant_id)s;

-- run_log_lines --
-- A run's log lines (one task's, if given) after an event id, in order.
SELECT id, task, attempt, data->>'message', extract(epoch FROM created_at) FROM events
WHERE run_id = %(run_id)s AND type = %(type)s AND (%(task)s::text IS NULL OR task = %(task)s)
  AND id > %(after)s
ORDER BY seq LIMIT %(limit)s;

-- run_trace_context --
-- A run's status and traceparent.
SELECT status, trace->>'traceparent' FROM runs
WHERE id = %(run_id)s AND tenant_id = %(tenant_id)s;

-- cancelled_attempts_since --
-- A tenant's task runs with an attempt cancelled since a time, newest first.
SELECT a.task_run_id FROM task_attempts a JOIN task_runs t ON t.id = a.task_run_id
JOIN runs r ON r.id = t.run_id
WHERE a.status = %(cancelled)s AND a.finished_at >= to_timestamp(%(since)s)
  AND r.tenant_id = %(tenant_id)s
ORDER BY a.finished_at DESC LIMIT 100000;
