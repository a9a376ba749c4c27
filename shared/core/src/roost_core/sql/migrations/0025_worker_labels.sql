-- A worker process's labels (issue #21): what its Worker declared ({"gpu": "a100",
-- "memory_gb": 64}), as its latest heartbeat carried them (set_labels changes them at run
-- time). Shown with the worker; not yet used to place tasks.
ALTER TABLE workers ADD COLUMN labels jsonb NOT NULL DEFAULT '{}';
