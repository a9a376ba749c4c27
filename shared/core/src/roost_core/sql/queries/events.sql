-- append_events_and_outbox --
-- Appends events to their runs' logs and writes the outbox, in one statement (one round
-- trip of the transaction's few; issue #17): first, per tenant, the `events.appended`
-- broadcast of the events just appended (the EventBatch body, built here from the rows
-- as inserted), then the given messages. Each run's next seq continues from its last
-- event (one index probe per run, under the run lock the caller holds); a run created in
-- this same transaction has none, so it starts at 1. Returns the events' (id, seq) in
-- the order given, then the outbox rows' ids in the order written, each broadcast's with
-- its body. (Ids follow insertion order, and each INSERT inserts in the order given.)
WITH v AS (SELECT * FROM unnest(%(tenant_ids)b::uuid[], %(run_ids)b::uuid[],
    %(workflows)b::text[], %(types)b::text[], %(tasks)b::text[], %(attempts)b::int[],
    %(data)b::text[], %(at)b::float8[])
  WITH ORDINALITY AS v(tenant_id, run_id, workflow, type, task, attempt, data, at, n)),
base AS (SELECT r.run_id, coalesce((SELECT max(e.seq) FROM events e
  WHERE e.run_id = r.run_id), 0) AS seq FROM (SELECT DISTINCT run_id FROM v) r),
appended AS (
  INSERT INTO events (tenant_id, run_id, workflow, seq, type, task, attempt, data,
    created_at)
  SELECT v.tenant_id, v.run_id, v.workflow,
    base.seq + row_number() OVER (PARTITION BY v.run_id ORDER BY v.n),
    v.type, v.task, v.attempt, v.data::jsonb, to_timestamp(v.at)
  FROM v JOIN base ON base.run_id = v.run_id ORDER BY v.n
  RETURNING id, seq, tenant_id, run_id, workflow, type, task, attempt, data, created_at),
broadcast AS (
  SELECT a.tenant_id, convert_to(json_build_object('tenant_id', a.tenant_id,
    'events', json_agg(json_build_object('id', a.id, 'seq', a.seq,
      'tenant_id', a.tenant_id, 'run_id', a.run_id, 'workflow', a.workflow,
      'type', a.type, 'task', a.task, 'attempt', a.attempt, 'data', a.data,
      'at', extract(epoch FROM a.created_at)) ORDER BY a.id))::text, 'UTF8') AS body
  FROM appended a GROUP BY a.tenant_id),
written AS (
  INSERT INTO outbox (exchange, routing_key, body, headers, mandatory, priority)
  SELECT o.exchange, o.routing_key, o.body, o.headers, o.mandatory, o.priority FROM (
    SELECT %(events_exchange)s::text AS exchange, %(events_key)s::text AS routing_key, b.body,
      NULL::jsonb AS headers, false AS mandatory, NULL::int2 AS priority, 0 AS part,
      row_number() OVER (ORDER BY b.tenant_id) AS n
    FROM broadcast b
    UNION ALL
    SELECT m.exchange, m.routing_key, m.body, m.headers::jsonb, m.mandatory, m.priority, 1,
      m.n
    FROM unnest(%(exchanges)b::text[], %(routing_keys)b::text[], %(bodies)b::bytea[],
      %(headers)b::text[], %(mandatory)b::bool[], %(priorities)b::int2[])
      WITH ORDINALITY AS m(exchange, routing_key, body, headers, mandatory, priority, n)
  ) o ORDER BY o.part, o.n
  RETURNING id, CASE WHEN routing_key = %(events_key)s::text AND NOT mandatory
    THEN body END AS body)
SELECT true AS event, id, seq, NULL::bytea AS body FROM appended
UNION ALL
SELECT false, id, NULL, body FROM written
ORDER BY 1 DESC, 2;
