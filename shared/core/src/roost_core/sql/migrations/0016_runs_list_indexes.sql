-- The runs list (the dashboard's first page) filtered by workflow and status, newest
-- first: without this index a rare status of a busy workflow, or any status of a rare
-- one, was found by walking the tenant's runs newest first. The workflow filter alone
-- uses runs_by_workflow; metadata pairs use runs_metadata (GIN).
CREATE INDEX runs_by_workflow_status ON runs (workflow_id, status, created_at DESC, id DESC);
