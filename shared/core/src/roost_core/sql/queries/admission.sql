-- insert_waiters --
-- Task messages (and run waiters) that must wait for admission, in the given order; an
-- attempt already waiting is left as it is.
INSERT INTO rate_limit_waiters (tenant_id, run_id, task_run_id, attempt, task, keys,
  units, queue, message, priority)
SELECT v.tenant_id, v.run_id, v.task_run_id, v.attempt, v.task,
  string_to_array(v.keys, ' '), string_to_array(v.units, ' ')::int[], v.queue, v.message,
  v.priority
FROM unnest(%(tenant_ids)b::uuid[], %(run_ids)b::uuid[], %(task_run_ids)b::uuid[],
  %(attempts)b::int[], %(tasks)b::text[], %(keys)b::text[], %(units)b::text[],
  %(queues)b::text[], %(messages)b::bytea[], %(priorities)b::int2[])
  WITH ORDINALITY AS v(tenant_id, run_id, task_run_id, attempt, task, keys, units, queue,
  message, priority, n)
ORDER BY v.n ON CONFLICT (task_run_id, attempt) DO NOTHING;

-- release_holds --
-- Frees the units the given attempts (task run id, attempt) hold.
DELETE FROM rate_limit_holds h
USING unnest(%(task_run_ids)b::uuid[], %(attempts)b::int[]) AS v(id, a)
WHERE h.task_run_id = v.id AND h.attempt = v.a RETURNING 1;

-- release_waiters --
-- Removes the given attempts (task run id, attempt) from the waiters.
DELETE FROM rate_limit_waiters w
USING unnest(%(task_run_ids)b::uuid[], %(attempts)b::int[]) AS v(id, a)
WHERE w.task_run_id = v.id AND w.attempt = v.a RETURNING 1;

-- upsert_dynamic_keys --
-- Dynamic keys are created on first use with the limit (and, for a task's concurrency
-- keys, the strategy) their task declares; a changed declaration updates them (rows that
-- already match are not rewritten).
INSERT INTO rate_limits (tenant_id, key, limit_value, window_seconds, on_full)
SELECT DISTINCT ON (v.tenant_id, v.key) v.tenant_id, v.key, v.limit_value, v.seconds,
  v.on_full
FROM unnest(%(tenant_ids)b::uuid[], %(keys)b::text[], %(limits)b::int[],
  %(window_seconds)b::int[], %(on_full)b::text[])
  AS v(tenant_id, key, limit_value, seconds, on_full)
ORDER BY v.tenant_id, v.key
ON CONFLICT (tenant_id, key) DO UPDATE SET limit_value = EXCLUDED.limit_value,
  window_seconds = EXCLUDED.window_seconds, on_full = EXCLUDED.on_full, updated_at = now()
WHERE rate_limits.limit_value IS DISTINCT FROM EXCLUDED.limit_value
  OR rate_limits.window_seconds IS DISTINCT FROM EXCLUDED.window_seconds
  OR rate_limits.on_full IS DISTINCT FROM EXCLUDED.on_full;
