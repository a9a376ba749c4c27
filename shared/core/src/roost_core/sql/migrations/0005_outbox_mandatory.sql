-- Broadcasts (cancellations to whichever workers listen) may find nobody listening;
-- every other message must reach a queue, or the publish fails and is retried.
ALTER TABLE outbox ADD COLUMN mandatory boolean NOT NULL DEFAULT true;
