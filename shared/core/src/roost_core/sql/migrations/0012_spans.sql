-- Roost's own span store: the finished spans of each run's trace, so a trace is
-- visible with no collector. Bounded per run by the scheduler that stores them; deleted
-- with their run.
CREATE TABLE spans (
    run_id          uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    span_id         text NOT NULL,            -- 16 hex digits
    trace_id        text NOT NULL,            -- 32 hex digits
    parent_span_id  text,
    name            text NOT NULL,
    service         text NOT NULL,            -- the process's service.name
    kind            text NOT NULL,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz NOT NULL,
    status          text NOT NULL,            -- unset, ok, error
    status_message  text,
    attributes      jsonb NOT NULL DEFAULT '{}',
    events          jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, span_id)
);
