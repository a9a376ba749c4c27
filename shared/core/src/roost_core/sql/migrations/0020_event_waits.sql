-- Durable tasks waiting for an event (issue #18, ctx.wait_for_event). The scheduler
-- matches each wait against the events pushed with its key (engine.event_waits).

-- One row per WAITING task that waits for an event: the next event pushed with `key`
-- at or after `since` whose data passes `filter` (CEL over `payload`) ends it. (seen_at,
-- seen_id) is the last event already judged for it: each event is judged once per wait.
CREATE TABLE event_waits (
    task_run_id  uuid PRIMARY KEY REFERENCES task_runs(id) ON DELETE CASCADE,
    run_id       uuid NOT NULL,
    tenant_id    uuid NOT NULL,
    seq          integer NOT NULL,  -- the wait's durable call number: its journal entry
    key          text NOT NULL,
    filter       text,
    since        timestamptz NOT NULL,
    seen_at      timestamptz NOT NULL,
    seen_id      uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_waits_by_key ON event_waits (tenant_id, key, created_at);

-- Each pushed event ends at most one wait: the primary key makes a second impossible,
-- whichever scheduler replica gets there.
CREATE TABLE event_wait_matches (
    event_id     uuid PRIMARY KEY REFERENCES pushed_events(id) ON DELETE CASCADE,
    task_run_id  uuid NOT NULL REFERENCES task_runs(id) ON DELETE CASCADE,
    matched_at   timestamptz NOT NULL DEFAULT now()
);

-- The events of one key in push order, for matching.
CREATE INDEX pushed_events_by_key ON pushed_events (tenant_id, key, created_at, id);
