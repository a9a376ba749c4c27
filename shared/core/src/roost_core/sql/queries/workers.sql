-- record_heartbeats --
-- Each worker process's latest heartbeat; one older (by the worker's own clock) than the
-- one stored changes nothing.
INSERT INTO workers (id, name, workflows, slots, running, held, last_heartbeat_at,
  state, version, sdk_version, last_sent_at)
SELECT v.id, v.name, string_to_array(v.workflows, ','), v.slots, v.running,
  string_to_array(v.held, ','), now(), v.state, v.version, v.sdk_version, v.sent_at
FROM unnest(%(ids)s::text[], %(names)s::text[], %(workflows)s::text[], %(slots)s::int[],
  %(running)s::int[], %(held)s::text[], %(states)s::text[], %(versions)s::text[],
  %(sdk_versions)s::text[], %(sent_at)s::float8[])
  AS v(id, name, workflows, slots, running, held, state, version, sdk_version, sent_at)
ON CONFLICT (id) DO UPDATE SET last_heartbeat_at = now(), running = EXCLUDED.running,
  held = EXCLUDED.held,
  slots = EXCLUDED.slots, workflows = EXCLUDED.workflows, state = EXCLUDED.state,
  version = EXCLUDED.version, sdk_version = EXCLUDED.sdk_version,
  last_sent_at = EXCLUDED.last_sent_at
WHERE workers.last_sent_at IS NULL OR workers.last_sent_at <= EXCLUDED.last_sent_at;
