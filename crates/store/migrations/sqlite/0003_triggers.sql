-- Triggers beyond webhooks (issue 5): the state of schedules and polls, inbound e-mail
-- addresses, and flows switched on or off through the API.

-- One row per schedule or poll flow: JSON the trigger keeps between firings (the last slot,
-- a poll's cursor and remembered item ids). Written in the transaction that inserts the
-- executions it caused, so a crash cannot fire a slot or an item twice.
CREATE TABLE trigger_state (
    tenant_id   TEXT NOT NULL,
    integration TEXT NOT NULL,
    flow        TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, integration, flow)
);

-- Explicit inbound e-mail addresses (lower case). SMTP carries no tenant, so an address is
-- unique across every tenant; the primary key enforces it.
CREATE TABLE email_routes (
    address     TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    integration TEXT NOT NULL,
    flow        TEXT NOT NULL
);

-- A flow switched on or off through the API; it wins over the document's `active`.
CREATE TABLE flow_switches (
    tenant_id   TEXT NOT NULL,
    integration TEXT NOT NULL,
    flow        TEXT NOT NULL,
    active      INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, integration, flow)
);
