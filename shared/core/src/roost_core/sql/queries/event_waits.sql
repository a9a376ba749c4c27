-- add_event_wait --
-- A durable task waits for an event, as one branch of its wait ('' for a plain
-- wait_for_event; replacing an earlier one of the same task run and branch).
-- `since` is the worker's clock; events carry the database's: a worker clock ahead is
-- capped at now, so that events pushed while the report was on its way still count.
INSERT INTO event_waits (task_run_id, branch, run_id, tenant_id, seq, key, filter, since,
  seen_at)
SELECT t.id, %(branch)s, t.run_id, r.tenant_id, %(seq)s, %(key)s, %(filter)s,
  least(to_timestamp(%(since)s), now()), least(to_timestamp(%(since)s), now())
FROM task_runs t JOIN runs r ON r.id = t.run_id WHERE t.id = %(task_run_id)s
ON CONFLICT (task_run_id, branch) DO UPDATE SET seq = excluded.seq, key = excluded.key,
  filter = excluded.filter, since = excluded.since, seen_at = excluded.seen_at,
  seen_id = excluded.seen_id, created_at = now();

-- event_waits_due --
-- Waits with an event not yet judged for them (a batch, oldest wait first), locked; a
-- wait another scheduler replica holds is skipped.
SELECT w.task_run_id, w.run_id::text, w.tenant_id, w.seq, w.key, w.filter, w.seen_at,
  w.seen_id, w.branch
FROM event_waits w
WHERE EXISTS (
  SELECT 1 FROM pushed_events e
  WHERE e.tenant_id = w.tenant_id AND e.key = w.key AND (e.created_at, e.id) > (w.seen_at, w.seen_id)
)
ORDER BY w.created_at LIMIT 100 FOR UPDATE OF w SKIP LOCKED;

-- unseen_events --
-- The events of a wait's key it has not judged yet and no wait has taken, in push order.
SELECT e.id, e.key, e.data, e.created_at FROM pushed_events e
WHERE e.tenant_id = %(tenant_id)s AND e.key = %(key)s
  AND (e.created_at, e.id) > (%(seen_at)s, %(seen_id)s)
  AND NOT EXISTS (SELECT 1 FROM event_wait_matches m WHERE m.event_id = e.id)
ORDER BY e.created_at, e.id LIMIT 200;

-- take_event --
-- The event ends this wait, unless another wait took it first.
INSERT INTO event_wait_matches (event_id, task_run_id) VALUES (%(event_id)s, %(task_run_id)s)
ON CONFLICT DO NOTHING RETURNING event_id;

-- untake_event --
-- The task was no longer waiting: the event stays for others.
DELETE FROM event_wait_matches WHERE event_id = %(event_id)s;

-- journal_of_waiting --
-- A WAITING task run's durable calls (its run is locked).
SELECT journal FROM task_runs WHERE id = %(task_run_id)s AND status = 'WAITING';

-- wake_with_event --
-- The wait's journal entry holds its event; the next attempt is due now.
UPDATE task_runs SET journal = %(journal)s, dispatch_at = now()
WHERE id = %(task_run_id)s AND status = 'WAITING';

-- event_wait_seen --
-- The events judged so far for a wait: none of them ends it.
UPDATE event_waits SET seen_at = %(seen_at)s, seen_id = %(seen_id)s
WHERE task_run_id = %(task_run_id)s AND branch = %(branch)s;

-- drop_event_waits --
-- Waits that are over (their event came, they timed out, or their task is no longer
-- waiting).
DELETE FROM event_waits WHERE task_run_id = ANY(%(task_run_ids)b::uuid[]);
