-- insert_outbox --
-- Writes messages to publish after commit; one statement for any number of rows, and
-- WITH ORDINALITY keeps the returned ids in the order of the messages (RETURNING follows
-- the insertion order of the SELECT).
INSERT INTO outbox (exchange, routing_key, body, headers, mandatory, priority)
SELECT m.exchange, m.routing_key, m.body, m.headers::jsonb, m.mandatory, m.priority
FROM unnest(%(exchanges)b::text[], %(routing_keys)b::text[], %(bodies)b::bytea[],
  %(headers)b::text[], %(mandatory)b::bool[], %(priorities)b::int2[])
  WITH ORDINALITY AS m(exchange, routing_key, body, headers, mandatory, priority, n)
ORDER BY m.n RETURNING id;

-- delete_outbox --
-- Drops published outbox rows.
DELETE FROM outbox WHERE id = ANY(%(ids)b::bigint[]);

-- any_stale_outbox --
-- Whether any outbox row is older than a grace period (a read before claiming any).
SELECT 1 FROM outbox WHERE created_at < now() - make_interval(secs => %(older_than_s)s)
LIMIT 1;

-- claim_stale_outbox --
-- Claims outbox rows older than a grace period (left by a crash or a failed fast path)
-- that no other sweeper holds.
SELECT id, exchange, routing_key, body, headers, mandatory, priority FROM outbox
WHERE created_at < now() - make_interval(secs => %(older_than_s)s)
ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED;

-- queued_attempts --
-- Of the given (task run, attempt) pairs, those still QUEUED in that attempt: the ones
-- whose task message a worker may not have had yet.
SELECT t.id, t.attempt FROM task_runs t
JOIN unnest(%(task_run_ids)b::uuid[], %(attempts)b::int[]) AS v(id, attempt)
  ON t.id = v.id AND t.attempt = v.attempt
WHERE t.status = %(queued)s;
