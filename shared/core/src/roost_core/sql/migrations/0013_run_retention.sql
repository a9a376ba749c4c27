-- Retention: the scheduler deletes runs that ended more than ROOST_RUN_RETENTION_DAYS
-- ago, oldest first, with their task runs, attempts, spans (ON DELETE CASCADE) and events.
-- This index finds them without reading the live runs.
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
