-- span_counts --
-- How many spans each of the given runs has (an index lookup each); runs not found are
-- gone or never committed.
SELECT r.id::text, (SELECT count(*) FROM spans s WHERE s.run_id = r.id)
FROM runs r WHERE r.id = ANY(%(run_ids)b::uuid[]);

-- stored_spans --
-- Which of the given spans runs near their cap have already.
SELECT run_id::text, span_id FROM spans
WHERE run_id = ANY(%(run_ids)b::uuid[]) AND span_id = ANY(%(span_ids)b::text[]);

-- insert_spans --
-- Stores a batch of spans, sent as one JSON document that PostgreSQL unpacks (much
-- cheaper than a parameter array per column); returns those not stored before.
INSERT INTO spans (run_id, span_id, trace_id, parent_span_id, name, service, kind,
  started_at, ended_at, status, status_message, attributes, events)
SELECT v.run_id, v.span_id, v.trace_id, v.parent_span_id, v.name, v.service,
  v.kind, to_timestamp(v.start), to_timestamp(v."end"), coalesce(v.status, 'unset'),
  v.status_message, coalesce(v.attributes, '{}'), coalesce(v.events, '[]')
FROM json_to_recordset(%(spans)s::json) AS v(run_id uuid, span_id text, trace_id text,
  parent_span_id text, name text, service text, kind text, start float8,
  "end" float8, status text, status_message text, attributes jsonb, events jsonb)
ON CONFLICT (run_id, span_id) DO NOTHING
RETURNING run_id::text, span_id;

-- span_columns --
-- (A fragment.) A span's columns, in the order spans.from_row reads them.
run_id::text, trace_id, span_id, parent_span_id, name, service, kind,
extract(epoch FROM started_at)::float8, extract(epoch FROM ended_at)::float8,
status, status_message, attributes, events

-- run_spans --
-- A run's spans stored so far, in start order (the gateway's replay of a trace).
SELECT {{span_columns}} FROM spans WHERE run_id = %(run_id)s ORDER BY started_at;

-- run_spans_waterfall --
-- A run's spans in start order, a parent before the children that start with it (the
-- api's waterfall).
SELECT {{span_columns}} FROM spans WHERE run_id = %(run_id)s
ORDER BY started_at, ended_at DESC;
