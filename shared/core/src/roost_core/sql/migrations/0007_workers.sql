-- Worker processes, as their heartbeats describe them. A RUNNING attempt whose worker
-- has not been heard from within the heartbeat timeout is handed to another worker.
CREATE TABLE workers (
    id                 text PRIMARY KEY,          -- name@host:pid
    name               text NOT NULL,
    workflows          text[] NOT NULL,
    slots              integer NOT NULL,
    running            integer NOT NULL DEFAULT 0,
    started_at         timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at  timestamptz NOT NULL
);
CREATE INDEX task_runs_running ON task_runs (worker_id) WHERE status = 'RUNNING';
-- Retries a task has left count the failures after this attempt number (a replay
-- gives a task its full retry budget again).
ALTER TABLE task_runs ADD COLUMN retry_base integer NOT NULL DEFAULT 0;
