-- Integrations as products (issue 6): deployments with config values, sealed literal
-- credentials of versions, and child executions of `call` steps.

-- An integration installed in its tenant: its config values (secrets sealed, "fgs1:…") and
-- whether it is deployed. It is live when deployed and every required value is set.
CREATE TABLE deployments (
    tenant_id        TEXT NOT NULL,
    integration      TEXT NOT NULL,
    config           TEXT NOT NULL,
    deployed         INTEGER NOT NULL,
    deployed_version INTEGER,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, integration)
);

-- Credentials written literally in a version's document (webhook keys, tokens, passwords,
-- secret defaults), sealed; the stored source and document hold markers in their place.
ALTER TABLE integration_versions ADD COLUMN secrets TEXT;

-- The execution whose `call` step started this one.
ALTER TABLE executions ADD COLUMN parent_id TEXT;
CREATE INDEX executions_by_parent ON executions (parent_id) WHERE parent_id IS NOT NULL;
