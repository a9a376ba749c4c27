-- Schedules (issue #19): crons and scheduled runs, fired by the scheduler.

-- A cron: a workflow started at every fire time of an expression in a time zone.
-- declared: by the workflow's on_crons (registering a new version replaces the set);
-- else made through the api, and kept until deleted.
CREATE TABLE crons (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    workflow_id   uuid NOT NULL REFERENCES workflows(id),
    name          text NOT NULL,
    expression    text NOT NULL,
    timezone      text NOT NULL,
    input         jsonb NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}',
    catch_up      text NOT NULL,
    declared      boolean NOT NULL,
    paused        boolean NOT NULL DEFAULT false,
    next_fire_at  timestamptz NOT NULL,
    last_fire_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workflow_id, name)
);
-- The scheduler's look for due crons is an index probe, however many there are.
CREATE INDEX crons_due ON crons (next_fire_at) WHERE NOT paused;
CREATE INDEX crons_by_tenant ON crons (tenant_id, created_at, id);

-- One row per (cron, fire time) fired: the primary key makes a second fire of the same
-- time impossible, whichever scheduler replica tries. Deleted with its run (retention).
CREATE TABLE cron_fires (
    cron_id   uuid NOT NULL REFERENCES crons(id) ON DELETE CASCADE,
    fire_at   timestamptz NOT NULL,
    run_id    uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE
              DEFERRABLE INITIALLY DEFERRED,  -- the fire is claimed before its run exists
    fired_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (cron_id, fire_at)
);
CREATE INDEX cron_fires_by_run ON cron_fires (run_id);

-- A run to start once, at trigger_at. status: SCHEDULED, then FIRED (run_id set),
-- CANCELLED, or FAILED (it could not start a run: error says why).
CREATE TABLE scheduled_runs (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    workflow_id  uuid NOT NULL REFERENCES workflows(id),
    trigger_at   timestamptz NOT NULL,
    input        jsonb NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}',
    status       text NOT NULL,
    run_id       uuid UNIQUE,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    fired_at     timestamptz
);
CREATE INDEX scheduled_runs_due ON scheduled_runs (trigger_at) WHERE status = 'SCHEDULED';
CREATE INDEX scheduled_runs_by_tenant ON scheduled_runs (tenant_id, trigger_at, id);
