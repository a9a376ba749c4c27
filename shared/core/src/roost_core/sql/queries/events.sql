-- append_events --
-- Appends events to their runs' logs; one statement for any number of events and runs.
-- Each run's next seq continues from its last event (one index probe per run, under the
-- run lock the caller holds). A run created in this same transaction has none, so it
-- starts at 1.
WITH v AS (SELECT * FROM unnest(%(tenant_ids)b::uuid[], %(run_ids)b::uuid[],
    %(workflows)b::text[], %(types)b::text[], %(tasks)b::text[], %(attempts)b::int[],
    %(data)b::text[], %(at)b::float8[])
  WITH ORDINALITY AS v(tenant_id, run_id, workflow, type, task, attempt, data, at, n)),
base AS (SELECT r.run_id, coalesce((SELECT max(e.seq) FROM events e
  WHERE e.run_id = r.run_id), 0) AS seq FROM (SELECT DISTINCT run_id FROM v) r)
INSERT INTO events (tenant_id, run_id, workflow, seq, type, task, attempt, data,
  created_at)
SELECT v.tenant_id, v.run_id, v.workflow,
  base.seq + row_number() OVER (PARTITION BY v.run_id ORDER BY v.n),
  v.type, v.task, v.attempt, v.data::jsonb, to_timestamp(v.at)
FROM v JOIN base ON base.run_id = v.run_id ORDER BY v.n
RETURNING id, seq;
