-- lock_concurrency_group --
-- Makes triggers into the same concurrency group take turns, until commit.
SELECT pg_advisory_xact_lock(hashtext(%(key)s));

-- active_group_runs --
-- The active runs of a workflow's concurrency groups, oldest first, but for the given
-- (new) runs.
SELECT concurrency_key, id FROM runs WHERE workflow_id = %(workflow_id)s
AND concurrency_key = ANY(%(keys)s) AND status = ANY(%(statuses)s)
AND id <> ALL(%(exclude)b::uuid[])
ORDER BY created_at, id;
