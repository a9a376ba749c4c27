-- Workers that start after a cancellation ask which queued attempts were cancelled
-- recently, so that those never start on them either.
CREATE INDEX task_attempts_cancelled ON task_attempts (finished_at) WHERE status = 'CANCELLED';
