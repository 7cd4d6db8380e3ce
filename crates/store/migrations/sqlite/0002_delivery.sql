-- Delivery guarantees (issue 4): ordered keys and concurrency caps on executions, delivery
-- identities for idempotent ingress, shared rate limits, bulk jobs.

-- The order group of an execution (NULL: unordered) and whether it holds its group: queued
-- and running executions do, and failed ones whose flow blocks on exhaustion.
ALTER TABLE executions ADD COLUMN order_key TEXT;
ALTER TABLE executions ADD COLUMN holds_order INTEGER NOT NULL DEFAULT 0;
-- The flow's concurrency cap when the execution was accepted (NULL: none).
ALTER TABLE executions ADD COLUMN max_running INTEGER;

-- Queued executions without gates, and with (ordered or capped): claimed differently.
DROP INDEX executions_pending;
CREATE INDEX executions_pending_free ON executions (run_after, seq)
    WHERE status = 'queued' AND order_key IS NULL AND max_running IS NULL;
CREATE INDEX executions_pending_gated ON executions (run_after, seq)
    WHERE status = 'queued' AND (order_key IS NOT NULL OR max_running IS NOT NULL);
CREATE INDEX executions_holding ON executions (tenant_id, integration, flow, order_key, seq) WHERE holds_order = 1;
CREATE INDEX executions_running_by_flow ON executions (tenant_id, integration, flow) WHERE status = 'running';
CREATE INDEX executions_finished ON executions (finished_at) WHERE finished_at IS NOT NULL;

-- Delivery identities: a repeat within the window returns `execution_id`.
CREATE TABLE dedup_keys (
    tenant_id    TEXT NOT NULL,
    integration  TEXT NOT NULL,
    flow         TEXT NOT NULL,
    key          TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, integration, flow, key)
);
CREATE INDEX dedup_keys_expiry ON dedup_keys (expires_at);

-- Token buckets of named rate limits, shared by every node.
CREATE TABLE rate_limits (
    tenant_id    TEXT NOT NULL,
    integration  TEXT NOT NULL,
    name         TEXT NOT NULL,
    tokens       REAL NOT NULL,
    updated_at   INTEGER NOT NULL,
    paused_until INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, integration, name)
);

-- Bulk retries and replays, with their progress.
CREATE TABLE bulk_jobs (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    filter      TEXT NOT NULL,
    total       INTEGER NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);
