-- workflow_definition --
-- The definition of a workflow version (immutable, so read once per process).
SELECT definition FROM workflow_versions WHERE id = %(version_id)s;

-- lock_runs --
-- Locks the runs a transaction changes, in id order, so two scheduler replicas never
-- deadlock and each sees the other's committed work on the same run.
SELECT id, status, input, workflow_name, workflow_version_id, tenant_id, trace, metadata,
  sticky_worker, desired_labels, priority
FROM runs WHERE id = ANY(%(run_ids)b::uuid[]) ORDER BY id FOR UPDATE;

-- mark_runs_running --
-- Queued runs start, each when its first report says so.
UPDATE runs SET status = %(running)s, started_at = to_timestamp(v.at)
FROM unnest(%(run_ids)b::uuid[], %(started_at)b::float8[]) AS v(id, at)
WHERE runs.id = v.id AND runs.status = %(queued)s;
