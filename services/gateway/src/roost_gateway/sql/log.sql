-- run_workflow --
-- The workflow of one of a tenant's runs.
SELECT workflow_name FROM runs WHERE id = %(run_id)s AND tenant_id = %(tenant_id)s;

-- workflow_exists --
-- Whether the tenant has a workflow of this name.
SELECT 1 FROM workflows WHERE tenant_id = %(tenant_id)s AND name = %(name)s;

-- event_columns --
-- (A fragment.) An event's columns, in the order log._event reads them.
SELECT id, seq, tenant_id, run_id, workflow, type, task, attempt, data,
  extract(epoch FROM created_at) FROM events

-- last_run_event --
-- A run's last event.
{{event_columns}} WHERE run_id = %(run_id)s ORDER BY seq DESC LIMIT 1;

-- seq_at --
-- The seq of a run's last event with an id at most the given one (0: none).
SELECT coalesce(max(seq), 0) FROM events WHERE run_id = %(run_id)s AND id <= %(event_id)s;

-- run_events_page --
-- A run's events between two seqs, in order.
{{event_columns}} WHERE run_id = %(run_id)s AND seq > %(after_seq)s AND seq < %(before_seq)s
ORDER BY seq LIMIT %(limit)s;

-- workflow_events_page --
-- A tenant's workflow's events after an id, in order.
{{event_columns}} WHERE workflow = %(workflow)s AND tenant_id = %(tenant_id)s
AND id > %(after_id)s
ORDER BY id LIMIT %(limit)s;

-- tenant_events_page --
-- A tenant's events after an id, in order.
{{event_columns}} WHERE tenant_id = %(tenant_id)s AND id > %(after_id)s
ORDER BY id LIMIT %(limit)s;

-- last_event_id --
-- The newest event id: where a live-only stream starts.
SELECT coalesce(max(id), 0) FROM events;
