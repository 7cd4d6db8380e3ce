//! Dry runs' records (issue 20): a version re-run against recorded executions, and one result
//! per execution. The engine decides what they hold (`engine/src/dry_runs/`); the store keeps
//! them tenant-scoped and deletes them after their retention.

use serde::Serialize;

/// A dry run and its progress.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// Its id (`dry_…`).
    pub id: String,
    /// Owner.
    #[serde(skip)]
    pub tenant_id: String,
    /// The integration.
    pub integration: String,
    /// The version re-run: its number, or `draft` for a document not stored.
    pub version: String,
    /// What was asked (flows, time range, status, limit), JSON.
    #[serde(skip)]
    pub request: String,
    /// The node running it.
    #[serde(skip)]
    pub node_id: String,
    /// `running`, `done`, `failed` (it could not go on: see `error`), `interrupted` (its node
    /// stopped).
    pub status: String,
    /// Executions selected.
    pub total: i64,
    /// Executions re-run so far.
    pub done: i64,
    /// Results `same`.
    pub same: i64,
    /// Results `different`.
    pub different: i64,
    /// Results `would_fail`.
    pub would_fail: i64,
    /// Results `unanswered`.
    pub unanswered: i64,
    /// Why it stopped, when it failed.
    pub error: Option<String>,
    /// Started (epoch ms).
    pub created_at: i64,
    /// Its last progress (epoch ms).
    #[serde(skip)]
    pub updated_at: i64,
    /// Ended (epoch ms).
    pub finished_at: Option<i64>,
}

/// Progress of a dry run, recorded with a page of results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DryRunCounts {
    /// Executions selected.
    pub total: i64,
    /// Re-run so far.
    pub done: i64,
    /// `same`.
    pub same: i64,
    /// `different`.
    pub different: i64,
    /// `would_fail`.
    pub would_fail: i64,
    /// `unanswered`.
    pub unanswered: i64,
}

/// One execution's result in a dry run.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct DryRunResult {
    /// The run.
    #[serde(skip)]
    pub dry_run_id: String,
    /// Its place in the run (1, 2, …).
    pub n: i64,
    /// The recorded execution.
    pub execution_id: String,
    /// Its flow.
    pub flow: String,
    /// `same`, `different`, `would_fail` or `unanswered`.
    pub outcome: String,
    /// What differs, the error, the steps without a recording: JSON.
    pub detail: String,
}

/// A recorded execution with its journal, as a dry run reads it.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The execution (with its event and result).
    pub execution: crate::ExecutionRow,
    /// Its journal, in order.
    pub journal: Vec<crate::StepRecord>,
}
