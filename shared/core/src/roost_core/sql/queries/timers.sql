-- due_work --
-- Whether any timer is due; whether any cron or scheduled run is; whether any event
-- wait has an event to judge; whether any child run a durable task waits for has
-- ended: one round trip of index probes, all an idle scheduler costs per tick. Written
-- so that no plan can scan a big table, statistics or not (autovacuum may be off, and
-- then task_runs and runs were never analyzed: `dispatch_at <= now()` was a sequential
-- scan of task_runs, 6-9 ms a tick under load, issue #17): min() over the partial
-- timer indexes reads one entry each, and the waits are driven from their own (small)
-- tables, one index probe each (OFFSET 0 keeps the planner from turning the probe
-- into a join that scans runs or pushed_events).
SELECT coalesce((SELECT min(dispatch_at) FROM task_runs) <= now(), false)
    OR coalesce((SELECT min(deadline_at) FROM task_runs) <= now(), false),
  EXISTS (SELECT 1 FROM crons WHERE NOT paused AND next_fire_at <= now())
    OR EXISTS (SELECT 1 FROM scheduled_runs WHERE status = 'SCHEDULED'
               AND trigger_at <= now()),
  EXISTS (SELECT 1 FROM event_waits w, LATERAL (SELECT 1 FROM pushed_events e
    WHERE e.tenant_id = w.tenant_id AND e.key = w.key
      AND (e.created_at, e.id) > (w.seen_at, w.seen_id) LIMIT 1 OFFSET 0) found),
  EXISTS (SELECT 1 FROM child_waits w, LATERAL (SELECT 1 FROM runs r
    WHERE r.id = w.child_run_id AND r.status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')
    OFFSET 0) ended);

-- runs_with_due_timers --
-- Runs with a retry whose backoff is over or a wait's end come, and runs with a deadline
-- passed (a batch of each). The first batch is large: ten thousand durable tasks due at
-- one time go out in two passes, ~0.8 s (docs/durable.md), not in twenty. Earliest
-- first, in index order (no sequential scan, analyzed or not).
(SELECT run_id FROM task_runs WHERE dispatch_at <= now() ORDER BY dispatch_at LIMIT 5000)
UNION (SELECT run_id FROM task_runs WHERE deadline_at <= now() ORDER BY deadline_at LIMIT 500);

-- clear_timers --
-- Ended runs keep no timers.
UPDATE task_runs SET dispatch_at = NULL, deadline_at = NULL
WHERE run_id = ANY(%(run_ids)b::uuid[]) AND (dispatch_at IS NOT NULL
  OR deadline_at IS NOT NULL);

-- expired_attempts --
-- Active attempts of the given runs past their deadline (and not waiting to be sent,
-- unless for a worker to place them on), with their placement (why they waited, or why
-- they cannot go on).
SELECT id, run_id, task_name, attempt, status, worker_id, placement FROM task_runs
WHERE run_id = ANY(%(run_ids)b::uuid[]) AND deadline_at <= now()
AND status = ANY(%(statuses)s) AND (dispatch_at IS NULL OR placement ? 'waits');

-- silent_worker --
-- (A fragment, after FROM task_runs t.) RUNNING attempts whose worker has been silent
-- (or never heard of) for %(timeout)s seconds.
LEFT JOIN workers w ON w.id = t.worker_id
WHERE t.status = %(running)s AND t.started_at < now() - make_interval(secs => %(timeout)s)
AND (w.last_heartbeat_at IS NULL OR w.last_heartbeat_at < now()
     - make_interval(secs => %(timeout)s))

-- runs_with_lost_attempts --
-- Runs with an attempt on a silent worker (a batch).
SELECT t.run_id FROM task_runs t {{silent_worker}} LIMIT 500;

-- lost_attempts --
-- The attempts on silent workers of the given runs, read again under their locks.
SELECT t.id, t.run_id, t.task_name, t.attempt, t.worker_id FROM task_runs t
{{silent_worker}}
AND t.run_id = ANY(%(run_ids)b::uuid[]);

-- workers_not_live --
-- Workers found silent are not live for placement from now on (issue #21).
UPDATE workers SET live_until = now()
WHERE id = ANY(%(worker_ids)b::text[]) AND live_until > now();
