-- The console's dashboard (issue 19, "at a glance"; `shared/dashboard.rs`): each of its
-- queries reads one tenant's entries of one of these indexes, bounded by a time range or a
-- status, never the whole table. Failures by error code use `executions_failed_recent`
-- (0012); the queue's depth and oldest execution `executions_by_tenant_status` (0011).

-- Executions per bucket and status over the last hour or day, by creation time; covering
-- (the status is in the key), so the counts read no table rows.
CREATE INDEX executions_by_tenant_created ON executions (tenant_id, created_at, status);
-- Durations per flow of the executions that finished in the range, newest first; covering.
CREATE INDEX executions_finished_by_tenant ON executions (tenant_id, finished_at, integration, flow, started_at)
    WHERE finished_at IS NOT NULL;
-- Outbound deliveries not yet delivered, by kind; covering.
CREATE INDEX deliveries_pending_by_tenant ON deliveries (tenant_id, kind, created_at, next_at) WHERE status = 'pending';
