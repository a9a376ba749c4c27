-- unheld_attempts --
-- QUEUED attempts older than the grace, not waiting for admission (a task waiter is
-- keyed by its attempt, a run waiter by its run and attempt 0), and held by no live
-- worker (heard from within the timeout, not stopped); oldest first, with the worker
-- process whose own queue it was placed on, if it was (issue #21).
SELECT t.id::text, t.attempt, r.workflow_name, now(), t.placed_on
FROM task_runs t JOIN runs r ON r.id = t.run_id
WHERE t.status = 'QUEUED' AND t.dispatch_at IS NULL
  AND t.queued_at < now() - make_interval(secs => %(grace)s)
  AND NOT EXISTS (SELECT 1 FROM rate_limit_waiters w
                  WHERE (w.task_run_id = t.id AND w.attempt = t.attempt)
                     OR (w.task_run_id = t.run_id AND w.attempt = 0))
  AND NOT EXISTS (SELECT 1 FROM workers k
                  WHERE k.state <> 'stopped'
                    AND k.last_heartbeat_at > now() - make_interval(secs => %(timeout)s)
                    AND k.held @> ARRAY[t.id::text || ':' || t.attempt])
ORDER BY t.queued_at LIMIT %(limit)s;

-- oldest_live_beat --
-- The oldest latest heartbeat of any live worker: until it is newer than a suspicion
-- (plus the confirmation margin), that worker may hold the suspected message.
SELECT min(last_heartbeat_at) FROM workers
WHERE state <> 'stopped' AND last_heartbeat_at > now() - make_interval(secs => %(timeout)s);

-- queues_with_outbox_messages --
-- Which of the given task queues still have messages in the outbox, not yet published.
SELECT DISTINCT routing_key FROM outbox WHERE exchange = '' AND routing_key = ANY(%(queues)s);

-- autovacuum_setting --
-- Whether PostgreSQL's autovacuum is on.
SHOW autovacuum;

-- vacuum_outbox --
-- The outbox churns most: vacuumed and analyzed.
VACUUM (ANALYZE) outbox;

-- hot_table_changes --
-- The hot tables' rows when last analyzed (-1: never) and rows changed since, from
-- PostgreSQL's own counters: what autovacuum's analyze threshold reads.
SELECT c.relname, c.reltuples, coalesce(s.n_mod_since_analyze, 0)
FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relname = ANY(%(tables)s) AND c.relnamespace = current_schema()::regnamespace;

-- analyze_runs --
-- Fresh statistics for the planner.
ANALYZE runs;

-- analyze_task_runs --
-- Fresh statistics for the planner.
ANALYZE task_runs;

-- analyze_events --
-- Fresh statistics for the planner.
ANALYZE events;

-- analyze_spans --
-- Fresh statistics for the planner.
ANALYZE spans;

-- delete_expired_runs --
-- One chunk of runs that ended more than a retention period ago, with their events,
-- spans and the scheduled runs that started them (cron fires go by their foreign key),
-- and scheduled runs cancelled that long ago; returns how many runs.
WITH gone AS (
  DELETE FROM runs WHERE id IN (
    SELECT id FROM runs
    WHERE finished_at < now() - make_interval(secs => %(seconds)s) AND status = ANY(%(statuses)s)
    ORDER BY finished_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
  RETURNING id),
events_gone AS (DELETE FROM events WHERE run_id IN (SELECT id FROM gone)),
spans_gone AS (DELETE FROM spans WHERE run_id IN (SELECT id FROM gone)),
scheduled_gone AS (DELETE FROM scheduled_runs WHERE run_id IN (SELECT id FROM gone)),
cancelled_gone AS (DELETE FROM scheduled_runs WHERE status = 'CANCELLED'
  AND trigger_at < now() - make_interval(secs => %(seconds)s))
SELECT count(*) FROM gone;
