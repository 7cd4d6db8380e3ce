-- Telling the world (issue 7): outbound deliveries (webhooks, e-mails, notifications), each
-- durable and retried on its schedule, with every attempt recorded.

-- One row per message to deliver. `id` is deterministic (`<execution>:<step>:<round>[:hook]`),
-- so a resumed step does not send twice. `request` is sealed: it holds credentials.
CREATE TABLE deliveries (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    integration  TEXT NOT NULL,
    flow         TEXT NOT NULL,
    execution_id TEXT,
    step_id      TEXT,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    request      TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    schedule     TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    waiting      INTEGER NOT NULL DEFAULT 0,
    last_status  INTEGER,
    last_error   TEXT,
    response     TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_execution ON deliveries (execution_id);

CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms  INTEGER NOT NULL,
    excerpt     TEXT,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

-- Log sources (SIEM): where a flow's events are streamed, per tenant.
CREATE TABLE log_sources (
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    config     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
