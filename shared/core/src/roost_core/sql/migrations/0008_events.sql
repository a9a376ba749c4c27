-- The durable event log: every lifecycle change of a run and its tasks, and every log
-- line, progress report and stream chunk a task emits. Append-only; its bigint id is
-- the SSE event id. `seq` numbers a run's events 1, 2, 3... without gaps: every writer
-- holds the run's row lock while it appends, so a run's events commit in seq order and
-- a gateway can tell a missing event from one that never existed.
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    run_id      uuid NOT NULL,
    workflow    text NOT NULL,
    seq         integer NOT NULL,
    type        text NOT NULL,
    task        text,
    attempt     integer,
    data        jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, seq)
);
CREATE INDEX events_by_workflow ON events (workflow, id);

-- Events pushed to Roost (POST /api/v1/events): stored, listed, each with the runs it
-- started. Unrelated to the event log above, which records what runs do.
CREATE TABLE pushed_events (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants(id),
    key              text NOT NULL,
    data             jsonb NOT NULL,
    idempotency_key  text,
    run_ids          uuid[] NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX pushed_events_idempotency ON pushed_events (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX pushed_events_by_tenant ON pushed_events (tenant_id, created_at DESC, id DESC);
