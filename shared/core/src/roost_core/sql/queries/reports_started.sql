-- start_attempts --
-- QUEUED (or, on a takeover, RUNNING) attempts start on their worker; one with an
-- execution timeout gets its engine-side deadline: start + timeout + grace.
UPDATE task_runs t SET status = %(running)s, started_at = to_timestamp(v.at), worker_id = v.w,
  deadline_at = to_timestamp(v.at + v.timeout + %(grace_seconds)s)
FROM unnest(%(task_run_ids)b::uuid[], %(attempts)b::int[], %(started_at)b::float8[],
  %(worker_ids)b::text[], %(timeouts)b::float8[]) AS v(id, a, at, w, timeout)
WHERE t.id = v.id AND t.attempt = v.a AND t.status = ANY(%(statuses)s)
RETURNING t.run_id, t.task_name, t.attempt, t.worker_id,
  extract(epoch FROM t.started_at), extract(epoch FROM t.queued_at);

-- refresh_deadlines --
-- Running attempts that moved their execution deadline (ctx.refresh_timeout): the
-- engine's follows, the worker's plus the grace. Only an attempt still running, and
-- only one that has a deadline (a task without an execution timeout has none).
UPDATE task_runs t SET deadline_at = to_timestamp(v.d + %(grace_seconds)s)
FROM unnest(%(task_run_ids)b::uuid[], %(attempts)b::int[], %(deadlines)b::float8[])
  AS v(id, a, d)
WHERE t.id = v.id AND t.attempt = v.a AND t.status = %(running)s
  AND t.deadline_at IS NOT NULL;
