-- Roost's own span store: the finished spans of each run's trace, so a trace is
-- visible with no collector. Bounded per run by the scheduler that stores them (which
-- stores spans only of runs it finds); deleted with their run by retention. No foreign
-- key: its check cost a third of the insert, at a few thousand spans a second.
CREATE TABLE spans (
    run_id          uuid NOT NULL,
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
