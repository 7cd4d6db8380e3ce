-- The monitor's and `GET /v1/executions`' other filters with a million executions: a
-- trigger kind few executions have (a `manual` run among webhooks) was found by reading the
-- tenant's every execution (2.1 s); a delivery identity (`search`) by reading the tenant's
-- every remembered dedup key (0.1 s). Each is now one index range.
CREATE INDEX executions_by_tenant_kind ON executions (tenant_id, trigger_kind, seq);
CREATE INDEX dedup_keys_by_key ON dedup_keys (tenant_id, key);
