-- The current version of a workflow is the one registered last (a worker rolled back to
-- an older definition makes that definition current again), not the one created last.
ALTER TABLE workflow_versions ADD COLUMN registered_at timestamptz NOT NULL DEFAULT clock_timestamp();
UPDATE workflow_versions SET registered_at = created_at;
DROP INDEX workflow_versions_latest;
CREATE INDEX workflow_versions_current ON workflow_versions (workflow_id, registered_at DESC);
