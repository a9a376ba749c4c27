-- Admission control (roost_ratelimiter). A key is either a concurrency limit (units held
-- while a task runs: window_seconds IS NULL) or a window limit (units admitted in any
-- window of window_seconds). Units in use are never stored as a counter that could drift:
-- they are the sum of rate_limit_holds (concurrency) or of rate_limit_admissions within
-- the window.
CREATE TABLE rate_limits (
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    key             text NOT NULL,
    limit_value     integer NOT NULL CHECK (limit_value > 0),
    window_seconds  integer CHECK (window_seconds > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX rate_limits_by_key ON rate_limits (key);

-- Task attempts waiting for admission, FIFO by id. `message` is the task message to send
-- to the worker queue `queue` once admitted; `keys` and `units` are what it takes.
CREATE TABLE rate_limit_waiters (
    id           bigserial PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    run_id       uuid NOT NULL,
    task_run_id  uuid NOT NULL,
    attempt      integer NOT NULL,
    task         text NOT NULL,
    keys         text[] NOT NULL,
    units        integer[] NOT NULL,
    queue        text NOT NULL,
    message      bytea NOT NULL,
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_run_id, attempt)
);

-- Concurrency units held by admitted attempts, released when the attempt ends in any way.
CREATE TABLE rate_limit_holds (
    tenant_id    uuid NOT NULL,
    key          text NOT NULL,
    task_run_id  uuid NOT NULL,
    attempt      integer NOT NULL,
    units        integer NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_run_id, key)
);
CREATE INDEX rate_limit_holds_by_key ON rate_limit_holds (tenant_id, key);

-- Window admissions: the sliding window's log (old rows are pruned by the ratelimiter).
CREATE TABLE rate_limit_admissions (
    tenant_id    uuid NOT NULL,
    key          text NOT NULL,
    units        integer NOT NULL,
    admitted_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX rate_limit_admissions_by_key ON rate_limit_admissions (tenant_id, key, admitted_at);

-- Workflow concurrency: the group a run belongs to (the value of the workflow's
-- concurrency expression), so the strategies can find the group's active runs.
ALTER TABLE runs ADD COLUMN concurrency_key text;
CREATE INDEX runs_active_by_group ON runs (workflow_id, concurrency_key, created_at)
    WHERE concurrency_key IS NOT NULL AND status IN ('QUEUED', 'RUNNING');
