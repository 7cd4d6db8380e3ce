-- An apply replaces its integration's routes (DELETE … WHERE tenant_id = ? AND integration = ?):
-- without these indexes that scanned every route of the tenant (every address, for e-mail),
-- so an apply slowed down as integrations were added.
CREATE INDEX webhook_routes_by_integration ON webhook_routes (tenant_id, integration);
CREATE INDEX email_routes_by_integration ON email_routes (tenant_id, integration);
