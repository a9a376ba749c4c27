-- notify_run_final --
-- Tells the api's waiters, at commit, that these runs have ended.
SELECT pg_notify(%(channel)s, id) FROM unnest(%(run_ids)b::text[]) AS id;
