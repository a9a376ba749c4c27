-- The safety net for lost task messages (roost_scheduler.redispatch).
-- held: every attempt a worker process holds ("task run id:attempt"): running, or
-- delivered to it and waiting for a thread, as its latest heartbeat listed them.
ALTER TABLE workers ADD COLUMN held text[] NOT NULL DEFAULT '{}';
-- QUEUED attempts, oldest first: the safety net looks for old ones without a scan.
CREATE INDEX task_runs_queued ON task_runs (queued_at) WHERE status = 'QUEUED';
