-- ping --
-- Whether PostgreSQL answers (a readiness check).
SELECT 1;

-- count_migrations --
-- How many migrations are applied (`roost doctor`).
SELECT count(*) FROM schema_migrations;
