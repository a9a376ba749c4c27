-- Issue #17: ANALYZE samples every column, and the JSON payloads (inputs, outputs,
-- errors, journals, span attributes, event data) are the widest and the costliest to
-- sample, yet no statement filters or joins on them: their statistics only ever cost.
-- ANALYZE skips a column whose statistics target is 0. (runs.metadata keeps its
-- statistics: its GIN index serves `metadata @> ...` filters.) Measured with autovacuum
-- off, where the scheduler analyzes: ANALYZE task_runs 60-400 ms, spans 0.3-1.2 s.
ALTER TABLE runs ALTER COLUMN input SET STATISTICS 0,
  ALTER COLUMN output SET STATISTICS 0,
  ALTER COLUMN error SET STATISTICS 0,
  ALTER COLUMN trace SET STATISTICS 0,
  ALTER COLUMN desired_labels SET STATISTICS 0;
ALTER TABLE task_runs ALTER COLUMN output SET STATISTICS 0,
  ALTER COLUMN error SET STATISTICS 0,
  ALTER COLUMN journal SET STATISTICS 0,
  ALTER COLUMN waiting SET STATISTICS 0,
  ALTER COLUMN placement SET STATISTICS 0;
ALTER TABLE events ALTER COLUMN data SET STATISTICS 0;
ALTER TABLE spans ALTER COLUMN attributes SET STATISTICS 0,
  ALTER COLUMN events SET STATISTICS 0;
