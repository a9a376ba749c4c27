-- lock_migrations --
-- Keeps two concurrent `roost migrate` from racing, until unlocked.
SELECT pg_advisory_lock(%(lock_id)s);

-- advisory_unlock --
-- Releases a session-level advisory lock (of `roost migrate`, or of a chore).
SELECT pg_advisory_unlock(%(lock_id)s);

-- create_schema_migrations --
-- The record of applied migrations, made on first use.
CREATE TABLE IF NOT EXISTS schema_migrations (
  version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());

-- applied_migrations --
-- The versions applied so far.
SELECT version FROM schema_migrations;

-- record_migration --
-- A migration was applied.
INSERT INTO schema_migrations (version) VALUES (%(version)s);

-- try_advisory_lock --
-- Takes a session-level advisory lock if no other session holds it (the replica that
-- gets it does a periodic chore; the others skip it).
SELECT pg_try_advisory_lock(%(lock_id)s);
