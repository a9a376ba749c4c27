-- Run metadata: string key/value pairs a caller attaches to a run (and an event-triggered
-- run gets its event's id and key), to find runs by later: `meta.repo=beads`. The GIN
-- index (jsonb_path_ops: containment only, the smaller kind) serves `metadata @> {...}`.
ALTER TABLE runs ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';
CREATE INDEX runs_metadata ON runs USING gin (metadata jsonb_path_ops);
