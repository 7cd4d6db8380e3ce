-- An apply replaces its integration's routes (DELETE … WHERE tenant_id = ? AND integration = ?):
-- without these indexes that scanned every route of the tenant (every address, for e-mail),
-- so an apply slowed down as integrations were added.
CREATE INDEX webhook_routes_by_integration ON webhook_routes (tenant_id, integration);
CREATE INDEX email_routes_by_integration ON email_routes (tenant_id, integration);

-- The queue's lane of suspects (executions that were running when a node died): without an
-- index of their own, looking for one walked every queued execution (the free-work index,
-- reading each row's `crashes`), about once a second and whenever fresh work left room — a
-- backlog of 200,000 then drained at under a thousand a second.
CREATE INDEX executions_suspects ON executions (run_after, seq) WHERE status = 'queued' AND crashes > 0;
