-- Queued work per flow, for claims when the head of the queue belongs to tenants or flows at
-- their share of a node's workers (shared/claims.rs): a claim walks the flows that have queued
-- work, one seek each, instead of reading every queued execution past the busy ones.
CREATE INDEX executions_queued_by_flow ON executions (tenant_id, integration, flow, run_after, seq)
    WHERE status = 'queued' AND order_key IS NULL AND max_running IS NULL;
