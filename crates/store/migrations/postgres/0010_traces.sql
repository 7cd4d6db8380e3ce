-- Traces (issue 18): the W3C `traceparent` of the span that accepted the event (its trace id
-- and the ingress span's id), so every run of the execution, on any node, joins that trace.
ALTER TABLE executions ADD COLUMN traceparent TEXT;
