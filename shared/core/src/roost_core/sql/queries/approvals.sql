-- add_approval --
-- A durable task's active attempt asks a person (in the transaction that suspends it);
-- a question asked again at the same durable call keeps its pending row and id. Returns
-- the id; no row when the attempt is not its task's current active one.
INSERT INTO approvals (id, tenant_id, run_id, task_run_id, seq, question, details, expires_at)
SELECT %(id)s, r.tenant_id, t.run_id, t.id, %(seq)s, %(question)s, %(details)s,
  to_timestamp(%(until)s)
FROM task_runs t JOIN runs r ON r.id = t.run_id
WHERE t.id = %(task_run_id)s AND t.attempt = %(attempt)s AND t.status = ANY(%(statuses)s)
  AND t.dispatch_at IS NULL
ON CONFLICT (task_run_id, seq) WHERE status = 'PENDING' DO UPDATE
  SET question = excluded.question, details = excluded.details,
    expires_at = excluded.expires_at
RETURNING id;

-- approval_run --
-- The run of one of the tenant's approvals (to lock it before the approval).
SELECT run_id::text FROM approvals WHERE id = %(id)s AND tenant_id = %(tenant_id)s;

-- approval_for_decision --
-- An approval, locked, with what deciding it depends on: its status and decision, its
-- task's status and journal, and whether its timeout has passed.
SELECT a.status, a.decided_by, a.decided_at, t.status, t.journal, a.task_run_id, a.seq,
  t.task_name, t.attempt, a.expires_at IS NOT NULL AND a.expires_at <= now()
FROM approvals a JOIN task_runs t ON t.id = a.task_run_id
WHERE a.id = %(id)s
FOR UPDATE OF a;

-- decide_approval --
-- The decision, final: who (the API token's name), when, and why.
UPDATE approvals SET status = %(status)s, decided_at = now(), decided_by = %(by)s,
  reason = %(reason)s
WHERE id = %(id)s AND status = 'PENDING'
RETURNING extract(epoch FROM decided_at)::float8;

-- token_name --
-- The name an API token was created with: who made a decision.
SELECT name FROM api_tokens WHERE id = %(token_id)s;
