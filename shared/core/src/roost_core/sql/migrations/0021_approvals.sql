-- Durable tasks waiting for a person's decision (issue #18, ctx.wait_for_approval).
-- One row per question asked: PENDING while the task waits, then APPROVED or REJECTED
-- (final: who decided, when, why) or EXPIRED (its timeout passed first). A PENDING one
-- whose task ended otherwise (cancelled) is shown CANCELLED.
CREATE TABLE approvals (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    run_id       uuid NOT NULL,
    task_run_id  uuid NOT NULL REFERENCES task_runs(id) ON DELETE CASCADE,
    seq          integer NOT NULL,  -- the wait's durable call number: its journal entry
    question     text NOT NULL,
    details      jsonb,
    status       text NOT NULL DEFAULT 'PENDING',
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    decided_at   timestamptz,
    decided_by   text,            -- the name of the API token that decided
    reason       text
);
-- A wait asked again (its task resumed early and waits on) keeps its one pending row.
CREATE UNIQUE INDEX approvals_one_pending ON approvals (task_run_id, seq)
  WHERE status = 'PENDING';
CREATE INDEX approvals_by_tenant ON approvals (tenant_id, created_at DESC, id);
CREATE INDEX approvals_by_run ON approvals (run_id);
