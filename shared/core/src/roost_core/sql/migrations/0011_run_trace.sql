-- A run's W3C trace context (a traceparent carrier), put in each of its task messages so
-- every attempt's span joins the run's trace. NULL when tracing is off.
ALTER TABLE runs ADD COLUMN trace jsonb;
