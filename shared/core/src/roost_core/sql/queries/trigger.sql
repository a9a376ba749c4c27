-- insert_runs --
-- New runs of a workflow version, in the order asked; a run whose idempotency key the
-- workflow already has is not created (it returns nothing), nor is one whose id exists
-- (an accepted run's message delivered again: roost_core.engine.accepted).
INSERT INTO runs (id, tenant_id, workflow_id, workflow_version_id, workflow_name,
  status, input, idempotency_key, remaining_tasks, concurrency_key, trace, metadata,
  desired_labels, priority)
SELECT v.id, %(tenant_id)s, %(workflow_id)s, %(version_id)s, %(workflow)s, %(queued)s,
  v.input::jsonb, v.key, %(tasks)s, v.concurrency_key, v.trace::jsonb,
  coalesce(v.metadata::jsonb, '{}'), v.labels::jsonb, v.priority
FROM unnest(%(run_ids)b::uuid[], %(inputs)b::text[], %(idempotency_keys)b::text[],
  %(concurrency_keys)b::text[], %(traces)b::text[], %(metadata)b::text[],
  %(desired_labels)b::text[], %(priorities)b::int2[])
  WITH ORDINALITY AS v(id, input, key, concurrency_key, trace, metadata, labels, priority,
  n)
ORDER BY v.n
ON CONFLICT DO NOTHING RETURNING id, created_at;

-- runs_by_idempotency_key --
-- The runs a workflow already has for the given idempotency keys.
SELECT idempotency_key, id FROM runs WHERE tenant_id = %(tenant_id)s
AND workflow_id = %(workflow_id)s AND idempotency_key = ANY(%(keys)s);

-- insert_task_runs --
-- The task runs of new runs: roots QUEUED with their first attempt, the rest PENDING
-- with a count of pending parents. Task names cannot contain ',' (roost_core.dag.NAME_RE),
-- so parents travel as CSV.
INSERT INTO task_runs (id, run_id, task_name, parents, pending_parents, status,
  attempt, queued_at, deadline_at)
SELECT v.id, v.run_id, v.name, string_to_array(v.parents, ','), v.pending,
  CASE WHEN v.root THEN %(queued)s ELSE %(pending)s END, CASE WHEN v.root THEN 1 ELSE 0 END,
  CASE WHEN v.root THEN now() END, to_timestamp(v.deadline)
FROM unnest(%(ids)b::uuid[], %(run_ids)b::uuid[], %(names)b::text[], %(parents)b::text[],
  %(pending_parents)b::int[], %(roots)b::bool[], %(deadlines)b::float8[])
  AS v(id, run_id, name, parents, pending, root, deadline);

-- link_parents --
-- New child runs (issue #18), each linked to the task that triggered it.
INSERT INTO run_parents (run_id, parent_run_id, parent_task_run_id, parent_task, key)
SELECT * FROM unnest(%(run_ids)b::uuid[], %(parent_run_ids)b::uuid[],
  %(parent_task_run_ids)b::uuid[], %(parent_tasks)b::text[], %(keys)b::text[])
ON CONFLICT (run_id) DO NOTHING;
