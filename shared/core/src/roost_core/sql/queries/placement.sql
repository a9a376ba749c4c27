-- record_placements --
-- Where each placed attempt went, or why it waits (looked at again after the retry
-- delay, keeping its schedule deadline), or why it cannot go on (a deadline of now: the
-- timer pass fails it with that reason).
UPDATE task_runs t SET placed_on = v.worker, placement = v.placement::jsonb,
  dispatch_at = CASE WHEN v.waits THEN now() + make_interval(secs => %(retry_seconds)s)
                ELSE t.dispatch_at END,
  deadline_at = CASE WHEN v.failed THEN now() ELSE t.deadline_at END
FROM unnest(%(task_run_ids)b::uuid[], %(workers)b::text[], %(placements)b::text[],
  %(waits)b::bool[], %(failed)b::bool[]) AS v(id, worker, placement, waits, failed)
WHERE t.id = v.id;

-- stick_runs --
-- Sticky runs keep the worker process their first attempt went to (or moved to: a soft
-- one whose worker is gone). The runs are locked.
UPDATE runs r SET sticky_worker = v.worker
FROM unnest(%(run_ids)b::uuid[], %(workers)b::text[]) AS v(id, worker)
WHERE r.id = v.id;

-- stranded_attempts --
-- QUEUED attempts placed on a worker process that is gone (stopped, or past its
-- heartbeat timeout), and not waiting for admission (a task waiter is keyed by its
-- attempt, a run waiter by its run and attempt 0): a batch.
SELECT t.id, t.attempt FROM task_runs t JOIN workers w ON w.id = t.placed_on
WHERE t.status = 'QUEUED' AND t.placed_on IS NOT NULL AND t.dispatch_at IS NULL
  AND (w.state = 'stopped' OR w.live_until < now())
  AND NOT EXISTS (SELECT 1 FROM rate_limit_waiters q
                  WHERE (q.task_run_id = t.id AND q.attempt = t.attempt)
                     OR (q.task_run_id = t.run_id AND q.attempt = 0))
LIMIT 500;

-- defer_placement --
-- QUEUED attempts left for the scheduler's timer pass to place (a trigger's, a replay's,
-- a failure handler's); a replayed run forgets the worker it stuck to.
WITH unstuck AS (
  UPDATE runs SET sticky_worker = NULL WHERE id = %(run_id)s AND sticky_worker IS NOT NULL
)
UPDATE task_runs SET dispatch_at = now(), placement = %(placement)s::jsonb
WHERE id = ANY(%(task_run_ids)b::uuid[]);
