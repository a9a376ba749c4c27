-- Durable timers on task runs, fired by the scheduler:
--   dispatch_at: a retry waiting out its backoff (the attempt is not on any queue yet);
--   deadline_at: the schedule deadline of a QUEUED attempt, or the execution deadline
--                of a RUNNING one.
ALTER TABLE task_runs ADD COLUMN dispatch_at timestamptz;
ALTER TABLE task_runs ADD COLUMN deadline_at timestamptz;
CREATE INDEX task_runs_dispatch_due ON task_runs (dispatch_at) WHERE dispatch_at IS NOT NULL;
CREATE INDEX task_runs_deadline_due ON task_runs (deadline_at) WHERE deadline_at IS NOT NULL;
