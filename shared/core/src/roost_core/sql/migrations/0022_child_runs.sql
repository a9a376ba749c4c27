-- Child runs (issue #18): a run triggered inside a task is linked to that task. The
-- link lives beside the run (most runs have none, and pay nothing for it).
CREATE TABLE run_parents (
    run_id              uuid PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    parent_run_id       uuid NOT NULL,
    parent_task_run_id  uuid NOT NULL,
    parent_task         text NOT NULL,
    key                 text NOT NULL  -- the spawn's key within its parent task
);
CREATE INDEX run_parents_by_parent ON run_parents (parent_run_id);

-- A durable task waiting for child runs to end (its journal entry names them all):
-- one row per child not yet judged ended.
CREATE TABLE child_waits (
    task_run_id   uuid NOT NULL REFERENCES task_runs(id) ON DELETE CASCADE,
    child_run_id  uuid NOT NULL,
    run_id        uuid NOT NULL,  -- the waiting task's run
    seq           integer NOT NULL,  -- the wait's durable call number
    PRIMARY KEY (task_run_id, child_run_id)
);
CREATE INDEX child_waits_by_child ON child_waits (child_run_id);
