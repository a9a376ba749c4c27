-- Placement (issue #21): sticky runs and tasks with desired labels go to one chosen
-- worker process's own queue (roost_core.engine.placement).
-- The worker process a sticky run's tasks go to: the one chosen for its first task.
ALTER TABLE runs ADD COLUMN sticky_worker text;
-- A run's override of its tasks' desired labels, key by key ({"region": {"value": "eu",
-- "required": true, ...}}), given at its trigger.
ALTER TABLE runs ADD COLUMN desired_labels jsonb;
-- The worker process whose own queue the current attempt was sent to (NULL: the
-- workflow's shared queue), and why: {"worker_id", "reason"}, or {"waits": reason} while
-- no live worker can take it, or {"error": reason} when it cannot go on (hard sticky).
ALTER TABLE task_runs ADD COLUMN placed_on text;
ALTER TABLE task_runs ADD COLUMN placement jsonb;
ALTER TABLE task_attempts ADD COLUMN placement jsonb;
-- Load per worker process: its attempts placed and not yet started.
CREATE INDEX task_runs_placed ON task_runs (placed_on) WHERE status = 'QUEUED'
  AND placed_on IS NOT NULL;
-- Until when a worker process counts as live (its latest heartbeat + the scheduler's
-- heartbeat timeout): the api and the scheduler place tasks by the one clock.
ALTER TABLE workers ADD COLUMN live_until timestamptz;
