-- Flowgate schema, version 1 (PostgreSQL). Same tables and meaning as the SQLite schema of
-- the same version; applied migrations are never edited. Times are milliseconds since the
-- Unix epoch; JSON payloads are stored as text, as written by Flowgate.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE integration_versions (
    id         BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    slug       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    format     TEXT NOT NULL,
    source     TEXT NOT NULL,
    document   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, slug, version)
);

CREATE TABLE integrations (
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    slug            TEXT NOT NULL,
    current_version BIGINT NOT NULL REFERENCES integration_versions(id),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, slug)
);

CREATE TABLE webhook_routes (
    tenant_id   TEXT NOT NULL,
    path        TEXT NOT NULL,
    integration TEXT NOT NULL,
    flow        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, path)
);

CREATE TABLE executions (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    tenant_id    TEXT NOT NULL,
    integration  TEXT NOT NULL,
    flow         TEXT NOT NULL,
    version_id   BIGINT NOT NULL,
    status       TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    auth_label   TEXT,
    attempt      BIGINT NOT NULL DEFAULT 1,
    run_after    BIGINT NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    created_at   BIGINT NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT,
    output       TEXT,
    response     TEXT,
    error        TEXT,
    failed_step  TEXT,
    replay_of    TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX executions_by_flow ON executions (tenant_id, integration, flow, seq);
CREATE INDEX executions_pending ON executions (run_after, seq) WHERE status = 'queued';
CREATE INDEX executions_leased ON executions (lease_until) WHERE status = 'running';

CREATE TABLE step_attempts (
    execution_id TEXT NOT NULL,
    step_id      TEXT NOT NULL,
    round        BIGINT NOT NULL,
    attempt      BIGINT NOT NULL,
    seq          BIGINT NOT NULL,
    status       TEXT NOT NULL,
    input        TEXT,
    output       TEXT,
    error        TEXT,
    response     TEXT,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT NOT NULL,
    PRIMARY KEY (execution_id, step_id, round, attempt)
);

CREATE TABLE execution_logs (
    n            BIGSERIAL PRIMARY KEY,
    execution_id TEXT NOT NULL,
    at           BIGINT NOT NULL,
    level        TEXT NOT NULL,
    step_id      TEXT,
    message      TEXT NOT NULL
);
CREATE INDEX execution_logs_by_execution ON execution_logs (execution_id, n);
