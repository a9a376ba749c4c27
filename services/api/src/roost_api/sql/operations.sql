-- runs_finished_per_minute --
-- A tenant's runs that ended in the last minutes, per minute and final state (through
-- the runs_finished index).
SELECT extract(epoch FROM date_trunc('minute', finished_at))::bigint, status, count(*)
FROM runs WHERE tenant_id = %(tenant_id)s
AND finished_at >= now() - make_interval(mins => %(minutes)s)
GROUP BY 1, 2 ORDER BY 1;

-- task_durations_per_minute --
-- The p50 and p95 durations of the tasks of those runs, per minute.
SELECT extract(epoch FROM date_trunc('minute', t.finished_at))::bigint,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY
    extract(epoch FROM t.finished_at - t.started_at)),
  percentile_cont(0.95) WITHIN GROUP (ORDER BY
    extract(epoch FROM t.finished_at - t.started_at))
FROM runs r JOIN task_runs t ON t.run_id = r.id
WHERE r.tenant_id = %(tenant_id)s AND r.finished_at >= now() - make_interval(mins => %(minutes)s)
  AND t.started_at IS NOT NULL AND t.finished_at IS NOT NULL
GROUP BY 1 ORDER BY 1;

-- current_minute --
-- The database's current minute, unix time.
SELECT extract(epoch FROM date_trunc('minute', now()))::bigint;

-- workers_list --
-- Worker processes (or the one with id worker_id), those still heard from first, then
-- the newest.
SELECT id, name, workflows, slots, running, started_at, last_heartbeat_at, state,
  version, sdk_version, labels,
  last_heartbeat_at >= now() - make_interval(secs => %(timeout)s) AS heard_recently
FROM workers
WHERE %(worker_id)s::text IS NULL OR id = %(worker_id)s::text
ORDER BY (state <> 'stopped' AND last_heartbeat_at >= now()
  - make_interval(secs => %(timeout)s)) DESC, last_heartbeat_at DESC LIMIT 1000;

-- served_workflows --
-- Workflows at least one live worker serves: alive (a draining worker takes no new
-- task) and heard from within the heartbeat timeout (a silent one is dead).
SELECT DISTINCT unnest(workflows) FROM workers
WHERE state = 'alive' AND last_heartbeat_at > now() - make_interval(secs => %(timeout)s);
