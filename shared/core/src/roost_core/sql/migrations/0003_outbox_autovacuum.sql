-- The outbox is a queue table: rows live for milliseconds. Let autovacuum (when it is
-- on) clean it after a fixed number of dead rows rather than a fraction of a table that
-- is almost always empty.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                        autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000);
