-- Dry runs (issue 20): a version re-run against recorded executions, nothing sent. A run and
-- its progress; one result row per execution it re-ran, kept with the run (`purge_dry_runs`
-- deletes both after their retention).
CREATE TABLE dry_runs (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    integration TEXT NOT NULL,
    version     TEXT NOT NULL,
    request     TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    total       BIGINT NOT NULL DEFAULT 0,
    done        BIGINT NOT NULL DEFAULT 0,
    same        BIGINT NOT NULL DEFAULT 0,
    different   BIGINT NOT NULL DEFAULT 0,
    would_fail  BIGINT NOT NULL DEFAULT 0,
    unanswered  BIGINT NOT NULL DEFAULT 0,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    -- Its last progress: a run whose node died without a trace (a cluster node with a new
    -- name after its restart) is seen as interrupted once this is old.
    updated_at  BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX dry_runs_by_tenant ON dry_runs (tenant_id, created_at);
CREATE INDEX dry_runs_by_created ON dry_runs (created_at);

CREATE TABLE dry_run_results (
    dry_run_id   TEXT NOT NULL,
    n            BIGINT NOT NULL,
    execution_id TEXT NOT NULL,
    flow         TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    PRIMARY KEY (dry_run_id, n)
);
-- A run's differences and failures alone, in order, among a million `same`.
CREATE INDEX dry_run_results_by_outcome ON dry_run_results (dry_run_id, outcome, n);
