-- record_heartbeats --
-- Each worker process's latest heartbeat; one older (by the worker's own clock) than the
-- one stored changes nothing. Labels come as JSON text, one object per process.
INSERT INTO workers (id, name, workflows, slots, running, held, last_heartbeat_at,
  state, version, sdk_version, last_sent_at, labels, live_until)
SELECT v.id, v.name, string_to_array(v.workflows, ','), v.slots, v.running,
  string_to_array(v.held, ','), now(), v.state, v.version, v.sdk_version, v.sent_at,
  v.labels::jsonb, now() + make_interval(secs => %(live_seconds)s)
FROM unnest(%(ids)b::text[], %(names)b::text[], %(workflows)b::text[], %(slots)b::int[],
  %(running)b::int[], %(held)b::text[], %(states)b::text[], %(versions)b::text[],
  %(sdk_versions)b::text[], %(sent_at)b::float8[], %(labels)b::text[])
  AS v(id, name, workflows, slots, running, held, state, version, sdk_version, sent_at,
    labels)
ON CONFLICT (id) DO UPDATE SET last_heartbeat_at = now(), running = EXCLUDED.running,
  held = EXCLUDED.held,
  slots = EXCLUDED.slots, workflows = EXCLUDED.workflows, state = EXCLUDED.state,
  version = EXCLUDED.version, sdk_version = EXCLUDED.sdk_version,
  last_sent_at = EXCLUDED.last_sent_at, labels = EXCLUDED.labels,
  live_until = EXCLUDED.live_until
WHERE workers.last_sent_at IS NULL OR workers.last_sent_at <= EXCLUDED.last_sent_at;

-- live_workers --
-- Worker processes that take work now (alive, within their heartbeat timeout) serving
-- any of the given workflows, with their load: attempts running by their latest
-- heartbeat, plus attempts placed on them and not yet started.
SELECT w.id, w.workflows, w.slots, w.labels,
  w.running + (SELECT count(*) FROM task_runs t
               WHERE t.placed_on = w.id AND t.status = 'QUEUED'
                 AND t.dispatch_at IS NULL)::int
FROM workers w
WHERE w.state = 'alive' AND w.live_until > now() AND w.workflows && %(workflows)b::text[]
ORDER BY w.id;
