-- insert_pushed_events --
-- Pushed events with the runs they started, in the order pushed; one whose idempotency
-- key the tenant already used is not stored (it returns nothing).
INSERT INTO pushed_events (id, tenant_id, key, data, idempotency_key, run_ids, created_at)
SELECT v.id, %(tenant_id)s, v.key, v.data::jsonb, v.ikey, string_to_array(v.runs, ',')::uuid[],
  clock_timestamp()
FROM unnest(%(ids)b::uuid[], %(keys)b::text[], %(data)b::text[],
  %(idempotency_keys)b::text[], %(run_ids)b::text[])
  WITH ORDINALITY AS v(id, key, data, ikey, runs, n)
ORDER BY v.n
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL
DO NOTHING RETURNING id, created_at;

-- pushed_event --
-- (A fragment, to which a condition is added.) A tenant's pushed events, each with the
-- runs it started, in order.
SELECT e.id, e.key, e.data, e.idempotency_key, e.created_at,
  (SELECT coalesce(jsonb_agg(jsonb_build_object('id', r.id, 'workflow', r.workflow_name)
    ORDER BY u.n), '[]'::jsonb)
   FROM unnest(e.run_ids) WITH ORDINALITY AS u(id, n) JOIN runs r ON r.id = u.id) AS runs
FROM pushed_events e WHERE e.tenant_id = %(tenant_id)s

-- pushed_events_by_idempotency_key --
-- A tenant's pushed events with the given idempotency keys.
{{pushed_event}} AND e.idempotency_key = ANY(%(keys)s);

-- pushed_event_by_id --
-- One of a tenant's pushed events.
{{pushed_event}} AND e.id = %(id)s;
