-- Triggers beyond webhooks (issue 5): see the SQLite migration of the same version.

CREATE TABLE trigger_state (
    tenant_id   TEXT NOT NULL,
    integration TEXT NOT NULL,
    flow        TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, integration, flow)
);

CREATE TABLE email_routes (
    address     TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    integration TEXT NOT NULL,
    flow        TEXT NOT NULL
);

CREATE TABLE flow_switches (
    tenant_id   TEXT NOT NULL,
    integration TEXT NOT NULL,
    flow        TEXT NOT NULL,
    active      BOOLEAN NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, integration, flow)
);
