-- Priority (issue #21): a run's tasks go to their queues with the run's priority, 1 (low,
-- the default) to 3 (high); RabbitMQ hands out higher ones first (x-max-priority), and
-- the engine's aging keeps low ones from starving (roost_core.engine.priority).
ALTER TABLE runs ADD COLUMN priority smallint NOT NULL DEFAULT 1
  CHECK (priority BETWEEN 1 AND 3);
-- The AMQP priority a message is published with (NULL: none), kept while it waits in the
-- outbox or for admission.
ALTER TABLE outbox ADD COLUMN priority smallint;
ALTER TABLE rate_limit_waiters ADD COLUMN priority smallint;
