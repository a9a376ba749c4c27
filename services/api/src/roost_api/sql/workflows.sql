-- upsert_workflow --
-- A tenant's workflow, created on first registration; returns its id.
INSERT INTO workflows (id, tenant_id, name) VALUES (%(id)s, %(tenant_id)s, %(name)s)
ON CONFLICT (tenant_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id;

-- register_version --
-- Registering makes the version current, even an older one again (a rollback). xmax = 0
-- only on a freshly inserted row: it tells a new version from a known one.
INSERT INTO workflow_versions (id, workflow_id, version, definition)
VALUES (%(id)s, %(workflow_id)s, %(version)s, %(definition)s)
ON CONFLICT (workflow_id, version)
DO UPDATE SET registered_at = clock_timestamp() RETURNING id, (xmax = 0);

-- workflow_version --
-- The given version of a tenant's workflow.
SELECT w.id, v.id, v.version, v.definition FROM workflows w
JOIN workflow_versions v ON v.workflow_id = w.id
WHERE w.tenant_id = %(tenant_id)s AND w.name = %(name)s AND v.version = %(version)s
ORDER BY v.registered_at DESC LIMIT 1;

-- newest_workflow_version --
-- The version of a tenant's workflow registered last.
SELECT w.id, v.id, v.version, v.definition FROM workflows w
JOIN workflow_versions v ON v.workflow_id = w.id
WHERE w.tenant_id = %(tenant_id)s AND w.name = %(name)s
ORDER BY v.registered_at DESC LIMIT 1;

-- event_triggered_workflows --
-- A tenant's workflows whose current version is triggered by events, by name.
SELECT w.id, v.id, v.version, v.definition FROM workflows w
CROSS JOIN LATERAL (SELECT x.id, x.version, x.definition FROM workflow_versions x
  WHERE x.workflow_id = w.id ORDER BY x.registered_at DESC LIMIT 1) v
WHERE w.tenant_id = %(tenant_id)s
  AND jsonb_array_length(coalesce(v.definition->'on_events', '[]'::jsonb)) > 0
ORDER BY w.name;

-- workflows_with_current_version --
-- A tenant's workflows, each with its current version and how many it has.
SELECT DISTINCT ON (w.id) w.name, v.version, v.definition, v.registered_at,
  (SELECT count(*) FROM workflow_versions x WHERE x.workflow_id = w.id) AS versions
FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id
WHERE w.tenant_id = %(tenant_id)s ORDER BY w.id, v.registered_at DESC;

-- workflow_id --
-- A tenant's workflow by name.
SELECT id FROM workflows WHERE tenant_id = %(tenant_id)s AND name = %(name)s;

-- workflow_run_stats --
-- A workflow's runs of the last hours: how many, how they ended, and their p50 and p95
-- durations.
SELECT count(*),
  count(*) FILTER (WHERE status = 'SUCCEEDED'),
  count(*) FILTER (WHERE status = 'FAILED'),
  count(*) FILTER (WHERE status = 'CANCELLED'),
  percentile_cont(0.5) WITHIN GROUP (ORDER BY
    extract(epoch FROM finished_at - created_at)) FILTER (WHERE finished_at IS NOT NULL),
  percentile_cont(0.95) WITHIN GROUP (ORDER BY
    extract(epoch FROM finished_at - created_at)) FILTER (WHERE finished_at IS NOT NULL)
FROM runs WHERE workflow_id = %(workflow_id)s
AND created_at >= now() - make_interval(secs => %(seconds)s);
