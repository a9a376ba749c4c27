-- record_heartbeats --
-- Each worker process's latest heartbeat; one older (by the worker's own clock) than the
-- one stored changes nothing. Labels come as JSON text, one object per process.
INSERT INTO workers (id, name, workflows, slots, running, held, last_heartbeat_at,
  state, version, sdk_version, last_sent_at, labels)
SELECT v.id, v.name, string_to_array(v.workflows, ','), v.slots, v.running,
  string_to_array(v.held, ','), now(), v.state, v.version, v.sdk_version, v.sent_at,
  v.labels::jsonb
FROM unnest(%(ids)b::text[], %(names)b::text[], %(workflows)b::text[], %(slots)b::int[],
  %(running)b::int[], %(held)b::text[], %(states)b::text[], %(versions)b::text[],
  %(sdk_versions)b::text[], %(sent_at)b::float8[], %(labels)b::text[])
  AS v(id, name, workflows, slots, running, held, state, version, sdk_version, sent_at,
    labels)
ON CONFLICT (id) DO UPDATE SET last_heartbeat_at = now(), running = EXCLUDED.running,
  held = EXCLUDED.held,
  slots = EXCLUDED.slots, workflows = EXCLUDED.workflows, state = EXCLUDED.state,
  version = EXCLUDED.version, sdk_version = EXCLUDED.sdk_version,
  last_sent_at = EXCLUDED.last_sent_at, labels = EXCLUDED.labels
WHERE workers.last_sent_at IS NULL OR workers.last_sent_at <= EXCLUDED.last_sent_at;
