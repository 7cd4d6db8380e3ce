-- Flowgate schema, version 1. Applied migrations are never edited (sqlx checks hashes);
-- changes go into a new file. Times are milliseconds since the Unix epoch.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE integration_versions (
    id         INTEGER PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    slug       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    format     TEXT NOT NULL,
    source     TEXT NOT NULL,
    document   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (tenant_id, slug, version)
);

-- The live version of each integration; deleting an integration removes its row here.
CREATE TABLE integrations (
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    slug            TEXT NOT NULL,
    current_version INTEGER NOT NULL REFERENCES integration_versions(id),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, slug)
);

-- Webhook paths are unique within a tenant; the primary key enforces it.
CREATE TABLE webhook_routes (
    tenant_id   TEXT NOT NULL,
    path        TEXT NOT NULL,
    integration TEXT NOT NULL,
    flow        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, path)
);

-- One row per execution. `seq` is the commit (arrival) order.
CREATE TABLE executions (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    tenant_id    TEXT NOT NULL,
    integration  TEXT NOT NULL,
    flow         TEXT NOT NULL,
    version_id   INTEGER NOT NULL,
    status       TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    auth_label   TEXT,
    attempt      INTEGER NOT NULL DEFAULT 1,
    run_after    INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    output       TEXT,
    response     TEXT,
    error        TEXT,
    failed_step  TEXT,
    replay_of    TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX executions_by_flow ON executions (tenant_id, integration, flow, seq);
CREATE INDEX executions_pending ON executions (run_after, seq) WHERE status = 'queued';
CREATE INDEX executions_leased ON executions (lease_until) WHERE status = 'running';

-- The journal: one row per step attempt. `round` is the execution's attempt (a retry from
-- the failed step starts a new round; completed steps of earlier rounds are reused).
CREATE TABLE step_attempts (
    execution_id TEXT NOT NULL,
    step_id      TEXT NOT NULL,
    round        INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    status       TEXT NOT NULL,
    input        TEXT,
    output       TEXT,
    error        TEXT,
    response     TEXT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    PRIMARY KEY (execution_id, step_id, round, attempt)
) WITHOUT ROWID;

-- Lines written by `log` steps, in the order they were written (rowid).
CREATE TABLE execution_logs (
    execution_id TEXT NOT NULL,
    at           INTEGER NOT NULL,
    level        TEXT NOT NULL,
    step_id      TEXT,
    message      TEXT NOT NULL
);
CREATE INDEX execution_logs_by_execution ON execution_logs (execution_id);
