-- Any-of waits (issue #18, ctx.wait_for_any): a durable task may wait for several events
-- at once, each a branch of the wait with its own key and filter; the first to come
-- ends it (a timer branch is the task's dispatch_at, as a timeout is). A plain
-- wait_for_event is the one branch named ''.
ALTER TABLE event_waits ADD COLUMN branch text NOT NULL DEFAULT '';
ALTER TABLE event_waits DROP CONSTRAINT event_waits_pkey;
ALTER TABLE event_waits ADD PRIMARY KEY (task_run_id, branch);
