-- Roost's first schema: tenants and tokens, workflows and their versions, runs, task runs,
-- attempts, and the transactional outbox.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    name        text NOT NULL,
    token_hash  text NOT NULL UNIQUE,          -- sha256 of the token; the token itself is never stored
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE workflows (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE workflow_versions (
    id           uuid PRIMARY KEY,
    workflow_id  uuid NOT NULL REFERENCES workflows(id),
    version      text NOT NULL,                -- hash of the definition
    definition   jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (workflow_id, version)
);
CREATE INDEX workflow_versions_latest ON workflow_versions (workflow_id, created_at DESC);

CREATE TABLE runs (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants(id),
    workflow_id          uuid NOT NULL REFERENCES workflows(id),
    workflow_version_id  uuid NOT NULL REFERENCES workflow_versions(id),
    workflow_name        text NOT NULL,
    status               text NOT NULL,
    input                jsonb NOT NULL,
    output               jsonb,
    error                jsonb,
    idempotency_key      text,
    remaining_tasks      integer NOT NULL,     -- tasks not yet in a final state
    created_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    finished_at          timestamptz
);
CREATE UNIQUE INDEX runs_idempotency ON runs (tenant_id, workflow_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_by_tenant ON runs (tenant_id, created_at DESC, id DESC);
CREATE INDEX runs_by_workflow ON runs (workflow_id, created_at DESC, id DESC);
CREATE INDEX runs_by_status ON runs (tenant_id, status, created_at DESC, id DESC);

CREATE TABLE task_runs (
    id               uuid PRIMARY KEY,
    run_id           uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task_name        text NOT NULL,
    parents          text[] NOT NULL,
    pending_parents  integer NOT NULL,          -- parents not yet succeeded
    status           text NOT NULL,
    attempt          integer NOT NULL DEFAULT 0, -- the current attempt; 0 until first queued
    output           jsonb,
    error            jsonb,
    worker_id        text,
    queued_at        timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    UNIQUE (run_id, task_name)
);

CREATE TABLE task_attempts (
    task_run_id  uuid NOT NULL REFERENCES task_runs(id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    status       text NOT NULL,
    worker_id    text,
    error        jsonb,
    queued_at    timestamptz,
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (task_run_id, attempt)
);

-- Transactional outbox: what a committed transaction still has to publish. Rows are
-- deleted once the broker confirms them; the sweeper republishes any a crash left behind.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    exchange     text NOT NULL,
    routing_key  text NOT NULL,
    body         bytea NOT NULL,
    headers      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The default tenant every token belongs to until multi-tenancy lands.
INSERT INTO tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'default');
