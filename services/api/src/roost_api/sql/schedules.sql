-- cron_columns --
-- (A fragment.) A cron as the api shows it; FROM crons c JOIN workflows w follows.
SELECT c.id, w.name AS workflow, c.name, c.expression, c.timezone, c.input, c.metadata,
  c.catch_up, c.declared, c.paused, c.next_fire_at, c.last_fire_at, c.created_at
FROM crons c JOIN workflows w ON w.id = c.workflow_id

-- db_clock --
-- The database's clock, which the scheduler fires by.
SELECT clock_timestamp();

-- insert_cron --
-- A new cron; nothing if the workflow has a cron of that name already.
INSERT INTO crons (id, tenant_id, workflow_id, name, expression, timezone, input, metadata,
  catch_up, declared, paused, next_fire_at)
VALUES (%(id)s, %(tenant_id)s, %(workflow_id)s, %(name)s, %(expression)s, %(timezone)s,
  %(input)s, %(metadata)s, %(catch_up)s, false, %(paused)s, %(next_fire_at)s)
ON CONFLICT (workflow_id, name) DO NOTHING RETURNING id;

-- get_cron --
-- One of the tenant's crons.
{{cron_columns}}
WHERE c.tenant_id = %(tenant_id)s AND c.id = %(id)s;

-- list_crons --
-- The tenant's crons (of one workflow, if given), oldest first, a page after the cursor.
{{cron_columns}}
WHERE c.tenant_id = %(tenant_id)s
  AND (%(workflow)s::text IS NULL OR w.name = %(workflow)s)
  AND (%(after_at)s::timestamptz IS NULL OR (c.created_at, c.id) > (%(after_at)s, %(after_id)s::uuid))
ORDER BY c.created_at, c.id LIMIT %(limit)s;

-- cron_recent_runs --
-- The latest runs a cron started, newest first.
SELECT f.fire_at, f.run_id, r.status FROM cron_fires f
LEFT JOIN runs r ON r.id = f.run_id
WHERE f.cron_id = %(id)s ORDER BY f.fire_at DESC LIMIT %(limit)s;

-- lock_cron --
-- A cron of the tenant's, locked to pause, resume or delete it.
SELECT expression, timezone, declared, paused FROM crons
WHERE tenant_id = %(tenant_id)s AND id = %(id)s FOR UPDATE;

-- set_cron_paused --
-- Pause a cron, or resume it from its next fire time after now.
UPDATE crons SET paused = %(paused)s, next_fire_at = coalesce(%(next_fire_at)s, next_fire_at)
WHERE id = %(id)s;

-- delete_cron --
-- Delete a cron (its fire records go with it; its runs stay).
DELETE FROM crons WHERE id = %(id)s;

-- remove_declared_crons --
-- The workflow's declared crons that its newest version no longer declares.
DELETE FROM crons WHERE workflow_id = %(workflow_id)s AND declared
  AND NOT (name = ANY(%(names)b::text[]));

-- upsert_declared_crons --
-- The crons the newest version declares: new ones start from their next fire time; kept
-- ones keep theirs (no fire twice, none skipped) and take the new input.
INSERT INTO crons (id, tenant_id, workflow_id, name, expression, timezone, input, metadata,
  catch_up, declared, next_fire_at)
SELECT v.id, %(tenant_id)s, %(workflow_id)s, v.name, v.name, 'UTC', %(input)s, '{}',
  'latest', true, v.next_at
FROM unnest(%(ids)b::uuid[], %(names)b::text[], %(next_ats)b::timestamptz[])
  AS v(id, name, next_at)
ON CONFLICT (workflow_id, name) DO UPDATE SET input = EXCLUDED.input
WHERE crons.declared;

-- scheduled_columns --
-- (A fragment.) A scheduled run as the api shows it; FROM scheduled_runs s JOIN
-- workflows w follows.
SELECT s.id, w.name AS workflow, s.trigger_at, s.input, s.metadata, s.status, s.run_id,
  s.created_at, s.fired_at, s.error
FROM scheduled_runs s JOIN workflows w ON w.id = s.workflow_id

-- insert_scheduled_run --
-- A run to start once at trigger_at (or after the delay, by the database's clock).
INSERT INTO scheduled_runs (id, tenant_id, workflow_id, trigger_at, input, metadata, status)
VALUES (%(id)s, %(tenant_id)s, %(workflow_id)s,
  coalesce(%(at)s, clock_timestamp() + make_interval(secs => %(delay)s)),
  %(input)s, %(metadata)s, 'SCHEDULED');

-- get_scheduled_run --
-- One of the tenant's scheduled runs.
{{scheduled_columns}}
WHERE s.tenant_id = %(tenant_id)s AND s.id = %(id)s;

-- list_scheduled_runs --
-- The tenant's scheduled runs (by workflow, by status), soonest first, a page after the
-- cursor.
{{scheduled_columns}}
WHERE s.tenant_id = %(tenant_id)s
  AND (%(workflow)s::text IS NULL OR w.name = %(workflow)s)
  AND (%(status)s::text IS NULL OR s.status = %(status)s)
  AND (%(after_at)s::timestamptz IS NULL
       OR (s.trigger_at, s.id) > (%(after_at)s, %(after_id)s::uuid))
ORDER BY s.trigger_at, s.id LIMIT %(limit)s;

-- reschedule_run --
-- A new time for a scheduled run that has not fired (or been cancelled).
UPDATE scheduled_runs
SET trigger_at = coalesce(%(at)s, clock_timestamp() + make_interval(secs => %(delay)s))
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND status = 'SCHEDULED' RETURNING id;

-- cancel_scheduled_run --
-- Cancel a scheduled run that has not fired. Waits for a fire in progress, then finds
-- it FIRED and changes nothing.
UPDATE scheduled_runs SET status = 'CANCELLED'
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND status = 'SCHEDULED' RETURNING id;
