-- The executions listing (`GET /v1/executions`, the console's monitor): a tenant's newest
-- executions first, optionally of one status, a page at a time from a cursor (`seq <`).
-- Without these, a tenant with a million executions had its listing sorted or filtered row
-- by row (0.2-1.2 s a page); with them each page is one index range read backwards.
-- Filters by integration and flow use `executions_by_flow`.
CREATE INDEX executions_by_tenant ON executions (tenant_id, seq);
CREATE INDEX executions_by_tenant_status ON executions (tenant_id, status, seq);
