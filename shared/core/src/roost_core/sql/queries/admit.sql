-- any_waiting --
-- Whether anything waits for admission (a read before a pass opens its transaction).
SELECT 1 FROM rate_limit_waiters LIMIT 1;

-- lock_admission --
-- Serializes admission passes across ratelimiter replicas, until the pass commits.
SELECT pg_advisory_xact_lock(hashtext('roost.ratelimiter.admission'));

-- first_waiters --
-- The first %(batch)s waiters of every key that has any, oldest first.
SELECT DISTINCT w.id, w.tenant_id, w.run_id, w.task_run_id, w.attempt, w.task, w.keys,
  w.units, w.queue, w.message, extract(epoch FROM w.enqueued_at), w.priority
FROM (SELECT DISTINCT tenant_id, unnest(keys) AS key FROM rate_limit_waiters) k
CROSS JOIN LATERAL (SELECT * FROM rate_limit_waiters w
  WHERE w.tenant_id = k.tenant_id AND k.key = ANY(w.keys) ORDER BY w.id LIMIT %(batch)s) w
ORDER BY w.id;

-- key_usage --
-- The limit, window, units in use and what to do when full (on_full) of the given keys,
-- and for a window key when the oldest admission still in the window leaves it (units
-- come back then).
SELECT l.tenant_id, l.key, l.limit_value, l.window_seconds, {{units_in_use}}, l.on_full,
  CASE WHEN l.window_seconds IS NOT NULL THEN
    (SELECT extract(epoch FROM min(a.admitted_at)) + l.window_seconds
     FROM rate_limit_admissions a WHERE a.tenant_id = l.tenant_id AND a.key = l.key
     AND a.admitted_at > clock_timestamp() - make_interval(secs => l.window_seconds))
  END
FROM rate_limits l JOIN unnest(%(tenant_ids)b::uuid[], %(keys)b::text[]) AS v(tenant_id, key)
  ON l.tenant_id = v.tenant_id AND l.key = v.key;

-- units_in_use --
-- (A fragment.) Units of the key in the rate_limits row `l` in use right now: held
-- concurrency units, or the admissions still inside the window. One definition for the
-- ratelimiter's passes and the api's listing, so both count alike.
CASE WHEN l.window_seconds IS NULL THEN
  (SELECT coalesce(sum(h.units), 0) FROM rate_limit_holds h
   WHERE h.tenant_id = l.tenant_id AND h.key = l.key)
ELSE (SELECT coalesce(sum(a.units), 0) FROM rate_limit_admissions a
  WHERE a.tenant_id = l.tenant_id AND a.key = l.key
  AND a.admitted_at > clock_timestamp() - make_interval(secs => l.window_seconds))
END

-- run_traces --
-- The trace carriers of the given runs that have one.
SELECT id, trace FROM runs WHERE id = ANY(%(run_ids)b::uuid[]) AND trace IS NOT NULL;

-- take_waiters --
-- Removes the given waiters, returning those still there (a cancelled run's are gone).
DELETE FROM rate_limit_waiters WHERE id = ANY(%(ids)s) RETURNING id;

-- insert_holds --
-- Records the concurrency units admitted attempts hold until they end.
INSERT INTO rate_limit_holds (tenant_id, key, task_run_id, attempt, units)
SELECT * FROM unnest(%(tenant_ids)b::uuid[], %(keys)b::text[], %(task_run_ids)b::uuid[],
  %(attempts)b::int[], %(units)b::int[])
ON CONFLICT (task_run_id, key) DO UPDATE SET attempt = EXCLUDED.attempt,
  units = EXCLUDED.units, acquired_at = now(), cancelling_at = NULL;

-- insert_admissions --
-- Records the units admitted attempts take from window keys.
INSERT INTO rate_limit_admissions (tenant_id, key, units)
SELECT * FROM unnest(%(tenant_ids)b::uuid[], %(keys)b::text[], %(units)b::int[]);

-- prune_admissions --
-- Drops window admissions no window can count any more (kept 10 minutes at least, for
-- whoever wants to look at recent admissions).
DELETE FROM rate_limit_admissions a USING rate_limits l
WHERE l.tenant_id = a.tenant_id AND l.key = a.key
AND a.admitted_at < now() - make_interval(secs => greatest(l.window_seconds, 600));

-- rate_limit_usage --
-- (A fragment.) Each of a tenant's keys with its units in use, attempts waiting, and
-- what a full key does (on_full).
SELECT l.key, l.limit_value, l.window_seconds, l.on_full, l.created_at, l.updated_at,
  {{units_in_use}} AS in_use,
  (SELECT count(*) FROM rate_limit_waiters w
   WHERE w.tenant_id = l.tenant_id AND l.key = ANY(w.keys)) AS waiting
FROM rate_limits l WHERE l.tenant_id = %(tenant_id)s

-- rate_limits_with_usage --
-- A tenant's keys with their usage, by key (the api's listing).
{{rate_limit_usage}} ORDER BY l.key;

-- rate_limit_with_usage --
-- One of a tenant's keys with its usage.
{{rate_limit_usage}} AND l.key = %(key)s ORDER BY l.key;

-- rate_limit_sizes --
-- The limits of the given keys of a tenant (to refuse a trigger that could never be
-- admitted).
SELECT key, limit_value FROM rate_limits WHERE tenant_id = %(tenant_id)s
AND key = ANY(%(keys)s);

-- put_rate_limit --
-- Creates or changes a rate-limit key.
INSERT INTO rate_limits (tenant_id, key, limit_value, window_seconds)
VALUES (%(tenant_id)s, %(key)s, %(limit)s, %(window_seconds)s)
ON CONFLICT (tenant_id, key) DO UPDATE SET limit_value = EXCLUDED.limit_value,
  window_seconds = EXCLUDED.window_seconds, updated_at = now();

-- cancellable_holders --
-- The attempts holding units of the given keys (cancel_in_progress ones) that the
-- ratelimiter has not asked to cancel yet, oldest first, with their run and task: the
-- ones a newer attempt may cancel to make room (roost_core.engine.strategies).
SELECT h.tenant_id, h.key, t.run_id, h.task_run_id, h.attempt, t.task_name, h.units
FROM rate_limit_holds h
JOIN unnest(%(tenant_ids)b::uuid[], %(keys)b::text[]) AS v(tenant_id, key)
  ON h.tenant_id = v.tenant_id AND h.key = v.key
JOIN task_runs t ON t.id = h.task_run_id
WHERE h.cancelling_at IS NULL
ORDER BY h.acquired_at, h.task_run_id;

-- mark_holds_cancelling --
-- The holds of attempts the ratelimiter asks to cancel to make room: still held until
-- those attempts end (the newcomer waits for them), and never asked for twice. Returns
-- the holds marked now (an attempt that ended meanwhile has none left to mark).
UPDATE rate_limit_holds h SET cancelling_at = now()
FROM unnest(%(task_run_ids)b::uuid[], %(attempts)b::int[]) AS v(id, a)
WHERE h.task_run_id = v.id AND h.attempt = v.a AND h.cancelling_at IS NULL
RETURNING h.task_run_id, h.attempt;
