-- succeed_and_release --
-- Records the results of succeeded attempts, each only if still its task's current
-- active attempt, and releases the children of the (run, task) pairs that did succeed:
-- one less pending parent each; at zero, queued with their first attempt. One statement,
-- so a hand-off waits for one round trip here, not two (issue #17). The two updates never
-- touch one row: a child is PENDING, never an active attempt.
-- The WHERE keeps to the guard it needs (id, attempt, status): one more predicate
-- ("dispatch_at IS NULL", redundant since a pending retry already has a new attempt
-- number) made PostgreSQL plan it badly on tables without statistics and cost four times
-- the CPU per run under bulk load. The sub-select in RETURNING sees the row as it was
-- before this statement: was it started?
-- It also counts the recorded tasks against their runs (remaining_tasks), which decides
-- which runs end (roost_core.engine.settle): one round trip less per batch.
-- It is sent with the batch's lock of its runs, before their rows are read (one round
-- trip for both), so the rows of the lock cannot tell it which runs have ended: it keeps
-- to live runs itself (the EXISTS; an ended run has no active task either, since a run
-- ends only once its tasks have, but no attempt of an ended run may ever change).
-- Rows, by kind: 0 each recorded attempt, 1 each released child (its id, run, task,
-- attempt and pending parents left), 2 each run counted (its id and tasks left, in
-- "pending").
WITH done AS (
  UPDATE task_runs t SET status = %(succeeded)s, output = v.o::jsonb, worker_id = v.w,
    started_at = to_timestamp(v.s), finished_at = to_timestamp(v.f),
    deadline_at = NULL, error = NULL
  FROM unnest(%(task_run_ids)b::uuid[], %(attempts)b::int[], %(outputs)b::text[],
    %(worker_ids)b::text[], %(started_at)b::float8[], %(finished_at)b::float8[])
    AS v(id, a, o, w, s, f)
  WHERE t.id = v.id AND t.attempt = v.a AND t.status = ANY(%(statuses)s)
    AND EXISTS (SELECT 1 FROM runs r WHERE r.id = t.run_id AND r.status = ANY(%(live_runs)s))
  RETURNING t.run_id, t.task_name, t.output, t.attempt, t.worker_id, t.id,
    extract(epoch FROM t.started_at) AS started, extract(epoch FROM t.finished_at) AS finished,
    (SELECT o.status FROM task_runs o WHERE o.id = t.id) AS was,
    extract(epoch FROM t.queued_at) AS queued),
released AS (
  UPDATE task_runs c SET pending_parents = c.pending_parents - d.n,
    status = CASE WHEN c.pending_parents = d.n THEN %(queued)s ELSE c.status END,
    attempt = CASE WHEN c.pending_parents = d.n THEN c.attempt + 1 ELSE c.attempt END,
    queued_at = CASE WHEN c.pending_parents = d.n THEN now() ELSE c.queued_at END
  FROM (SELECT k.id, count(*)::int AS n FROM task_runs k
        JOIN done f ON k.run_id = f.run_id AND f.task_name = ANY(k.parents)
        WHERE k.status = %(pending)s GROUP BY k.id) AS d
  WHERE c.id = d.id AND c.pending_parents >= d.n
  RETURNING c.id, c.run_id, c.task_name, c.pending_parents, c.attempt),
counted AS (
  UPDATE runs r SET remaining_tasks = r.remaining_tasks - s.n
  FROM (SELECT run_id, count(*)::int AS n FROM done GROUP BY run_id) AS s
  WHERE r.id = s.run_id
  RETURNING r.id, r.remaining_tasks)
SELECT 0 AS kind, run_id, task_name, output, attempt, worker_id, id, started,
  finished, was, queued, NULL::int AS pending FROM done
UNION ALL
SELECT 1, run_id, task_name, NULL, attempt, NULL, id, NULL, NULL, NULL, NULL,
  pending_parents FROM released
UNION ALL
SELECT 2, id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, remaining_tasks
FROM counted;
