-- worker_capacity --
-- Live workers alive and draining, alive workers' slots and busy slots, and all busy
-- slots. A draining worker's slots are busy until its tasks end, but never free: it
-- takes no new task. A stopped worker counts for nothing, however recent its goodbye.
SELECT count(*) FILTER (WHERE state = 'alive'), count(*) FILTER (WHERE state = 'draining'),
  coalesce(sum(slots) FILTER (WHERE state = 'alive'), 0),
  coalesce(sum(running) FILTER (WHERE state = 'alive'), 0), coalesce(sum(running), 0)
FROM workers WHERE state <> 'stopped'
AND last_heartbeat_at > now() - make_interval(secs => %(timeout)s);

-- waiting_per_key --
-- Attempts and runs waiting for admission, per key.
SELECT k.key, count(*) FROM rate_limit_waiters w, unnest(w.keys) AS k(key) GROUP BY k.key;

-- outbox_depth --
-- Messages in the outbox, not yet published.
SELECT count(*) FROM outbox;

-- workflow_names --
-- Every workflow name, of any tenant (their queues are per name).
SELECT DISTINCT name FROM workflows ORDER BY name;

-- tenant_workflow_names --
-- A tenant's workflow names.
SELECT name FROM workflows WHERE tenant_id = %(tenant_id)s ORDER BY name;
