-- parent_outputs --
-- The outputs of the given (run, task) pairs: parents that finished in an earlier batch.
SELECT t.run_id, t.task_name, t.output FROM task_runs t
JOIN unnest(%(run_ids)b::uuid[], %(tasks)b::text[]) AS m(run_id, task)
  ON t.run_id = m.run_id AND t.task_name = m.task;

-- failed_task_errors --
-- The errors of a run's failed tasks, as its failure handler gets them.
SELECT task_name, error FROM task_runs WHERE run_id = %(run_id)s
AND status = ANY(%(failures)s) AND task_name <> %(handler)s;

-- set_schedule_deadlines --
-- Gives QUEUED attempts their schedule deadlines (unix times).
UPDATE task_runs t SET deadline_at = to_timestamp(v.d)
FROM unnest(%(task_run_ids)b::uuid[], %(deadlines)b::float8[]) AS v(id, d)
WHERE t.id = v.id;

-- fired_due --
-- (A fragment: what follows the `fired` CTE, whose UPDATE queues the due attempts.) An
-- event wait timed out or ended is forgotten; an approval still pending timed out
-- (EXPIRED); each attempt sent, with the approval that expired, if one did, and
-- whether it waited for a worker to place it on (issue #21).
), forgotten AS (DELETE FROM event_waits WHERE task_run_id IN (SELECT id FROM fired)
), expired AS (
  UPDATE approvals SET status = 'EXPIRED', decided_at = now()
  WHERE task_run_id IN (SELECT id FROM fired) AND status = 'PENDING'
  RETURNING id, task_run_id
)
SELECT f.id, f.run_id, f.task_name, f.attempt, f.journal, e.id::text, f.waited
FROM fired f LEFT JOIN expired e ON e.task_run_id = f.id

-- fire_due_retries_of_tasks --
-- The given task runs' retries whose backoff is over, and durable tasks whose wait is,
-- are queued (with the durable calls a durable task replays; see fired_due).
WITH fired AS (
  UPDATE task_runs SET dispatch_at = NULL, waiting = NULL,
    -- one that waited for a worker to place it on keeps its time in the queue
    queued_at = CASE WHEN placement ? 'waits' THEN queued_at ELSE now() END,
    status = CASE WHEN status = 'WAITING' THEN 'QUEUED' ELSE status END
  WHERE id = ANY(%(task_run_ids)b::uuid[]) AND dispatch_at <= now()
  RETURNING id, run_id, task_name, attempt, journal, coalesce(placement ? 'waits', false)
    AS waited
{{fired_due}};

-- fire_due_retries_of_runs --
-- The given runs' retries whose backoff is over, and durable tasks whose wait is, are
-- queued (with the durable calls a durable task replays; see fired_due).
WITH fired AS (
  UPDATE task_runs SET dispatch_at = NULL, waiting = NULL,
    -- one that waited for a worker to place it on keeps its time in the queue
    queued_at = CASE WHEN placement ? 'waits' THEN queued_at ELSE now() END,
    status = CASE WHEN status = 'WAITING' THEN 'QUEUED' ELSE status END
  WHERE run_id = ANY(%(run_ids)b::uuid[]) AND dispatch_at <= now()
  RETURNING id, run_id, task_name, attempt, journal, coalesce(placement ? 'waits', false)
    AS waited
{{fired_due}};

-- aged_priorities --
-- Of the given workflows' shared queues, the lowest priority of an attempt sent there
-- and waiting longer than the aging bound (not waiting for admission, a timer or a
-- worker to place it on): new messages go no higher (roost_core.engine.priority).
SELECT r.workflow_name, min(r.priority) FROM task_runs t JOIN runs r ON r.id = t.run_id
WHERE t.status = 'QUEUED' AND t.dispatch_at IS NULL AND t.placed_on IS NULL
  AND t.queued_at < now() - make_interval(secs => %(aging)s)
  AND r.workflow_name = ANY(%(workflows)b::text[])
  AND NOT EXISTS (SELECT 1 FROM rate_limit_waiters w
                  WHERE (w.task_run_id = t.id AND w.attempt = t.attempt)
                     OR (w.task_run_id = t.run_id AND w.attempt = 0))
GROUP BY r.workflow_name;
