-- Delivery guarantees (issue 4): see the SQLite migration of the same version.

ALTER TABLE executions ADD COLUMN order_key TEXT;
ALTER TABLE executions ADD COLUMN holds_order BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE executions ADD COLUMN max_running BIGINT;

DROP INDEX executions_pending;
CREATE INDEX executions_pending_free ON executions (run_after, seq)
    WHERE status = 'queued' AND order_key IS NULL AND max_running IS NULL;
CREATE INDEX executions_pending_gated ON executions (run_after, seq)
    WHERE status = 'queued' AND (order_key IS NOT NULL OR max_running IS NOT NULL);
CREATE INDEX executions_holding ON executions (tenant_id, integration, flow, order_key, seq) WHERE holds_order;
CREATE INDEX executions_running_by_flow ON executions (tenant_id, integration, flow) WHERE status = 'running';
CREATE INDEX executions_finished ON executions (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE dedup_keys (
    tenant_id    TEXT NOT NULL,
    integration  TEXT NOT NULL,
    flow         TEXT NOT NULL,
    key          TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, integration, flow, key)
);
CREATE INDEX dedup_keys_expiry ON dedup_keys (expires_at);

CREATE TABLE rate_limits (
    tenant_id    TEXT NOT NULL,
    integration  TEXT NOT NULL,
    name         TEXT NOT NULL,
    tokens       DOUBLE PRECISION NOT NULL,
    updated_at   BIGINT NOT NULL,
    paused_until BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, integration, name)
);

CREATE TABLE bulk_jobs (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    filter      TEXT NOT NULL,
    total       BIGINT NOT NULL,
    done        BIGINT NOT NULL DEFAULT 0,
    failed      BIGINT NOT NULL DEFAULT 0,
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT
);
