-- schedules_due --
-- Whether a cron or a scheduled run is due: two index probes, so that an idle scheduler
-- looking five times a second opens no transaction.
SELECT 1 WHERE EXISTS (SELECT 1 FROM crons WHERE NOT paused AND next_fire_at <= now())
  OR EXISTS (SELECT 1 FROM scheduled_runs WHERE status = 'SCHEDULED'
             AND trigger_at <= now());

-- clock --
-- The database's clock: every scheduler replica and api process decides by this one.
SELECT clock_timestamp();

-- lock_due_crons --
-- Due crons (a batch), locked: a replica skips those another is firing.
SELECT c.id, c.tenant_id, c.workflow_id, w.name, c.name, c.expression, c.timezone,
  c.input, c.metadata, c.catch_up, c.next_fire_at
FROM crons c JOIN workflows w ON w.id = c.workflow_id
WHERE NOT c.paused AND c.next_fire_at <= %(now)s
ORDER BY c.next_fire_at LIMIT %(limit)s FOR UPDATE OF c SKIP LOCKED;

-- lock_due_scheduled_runs --
-- Due scheduled runs (a batch), locked: a replica skips those another is firing.
SELECT id, tenant_id, workflow_id, input, metadata, trigger_at
FROM scheduled_runs WHERE status = 'SCHEDULED' AND trigger_at <= %(now)s
ORDER BY trigger_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED;

-- claim_cron_fires --
-- Claims each (cron, fire time) with the id of the run it will start; a time already
-- claimed (fired before) is not returned, and starts nothing.
INSERT INTO cron_fires (cron_id, fire_at, run_id)
SELECT * FROM unnest(%(cron_ids)b::uuid[], %(fire_ats)b::timestamptz[], %(run_ids)b::uuid[])
ON CONFLICT DO NOTHING RETURNING run_id;

-- advance_crons --
-- Each fired cron's next fire time, and its last fire.
UPDATE crons c SET next_fire_at = v.next_at,
  last_fire_at = coalesce(v.last_at, c.last_fire_at)
FROM unnest(%(ids)b::uuid[], %(next_ats)b::timestamptz[], %(last_ats)b::timestamptz[])
  AS v(id, next_at, last_at)
WHERE c.id = v.id;

-- mark_scheduled_fired --
-- Scheduled runs fired, with the runs they started.
UPDATE scheduled_runs s SET status = 'FIRED', run_id = v.run_id, fired_at = clock_timestamp()
FROM unnest(%(ids)b::uuid[], %(run_ids)b::uuid[]) AS v(id, run_id)
WHERE s.id = v.id AND s.status = 'SCHEDULED';

-- newest_versions --
-- The version each of the given workflows registered last, with the workflow's name.
SELECT DISTINCT ON (v.workflow_id) v.workflow_id, v.id
FROM workflow_versions v WHERE v.workflow_id = ANY(%(workflow_ids)b::uuid[])
ORDER BY v.workflow_id, v.registered_at DESC;

-- fail_scheduled_run --
-- The earliest due scheduled run, which cannot fire, ends FAILED with the error.
UPDATE scheduled_runs SET status = 'FAILED', error = %(error)s, fired_at = clock_timestamp()
WHERE id = (SELECT id FROM scheduled_runs WHERE status = 'SCHEDULED'
            AND trigger_at <= %(now)s ORDER BY trigger_at LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id;
