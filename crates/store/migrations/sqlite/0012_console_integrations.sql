-- The console's integrations list counts each flow's failures of the last 24 hours
-- (`Store::failures_by_flow`). Only failed executions are in this index, by tenant and
-- finish time, with the flow's names so the count reads no table rows. `status` is in the
-- key although constant: the planner then sees two equalities and prefers this index to
-- wider ones over every finished execution (`executions_finished_by_tenant`).
CREATE INDEX executions_failed_recent ON executions (tenant_id, status, finished_at, integration, flow)
    WHERE status = 'failed';
