-- What a worker process last said of itself: alive, draining (asked to stop, finishing
-- its running tasks) or stopped (exited cleanly). "dead" is not stored: it is a worker
-- that is not stopped and has been silent past the heartbeat timeout, decided on read.
-- version: the application's version its operator set (Worker version= or
-- ROOST_WORKER_VERSION); sdk_version: the roost package it runs.
-- last_sent_at: the worker's own clock for its latest heartbeat recorded, so that an
-- older heartbeat handled late (by another scheduler replica) cannot undo a newer one,
-- such as a "draining" landing after the "stopped" that follows it.
ALTER TABLE workers
    ADD COLUMN state text NOT NULL DEFAULT 'alive'
        CHECK (state IN ('alive', 'draining', 'stopped')),
    ADD COLUMN version text,
    ADD COLUMN sdk_version text,
    ADD COLUMN last_sent_at double precision;
