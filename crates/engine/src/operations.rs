//! What a person does to executions after the fact: retry from the failed step, replay from
//! the start (on the latest or the original version), cancel, skip a blocking head, and the
//! same in bulk as a job with progress.

use crate::*;

/// What a bulk job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkKind {
    /// Resume failed executions from their failed step.
    Retry,
    /// Run executions again from the start.
    Replay,
}

impl BulkKind {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkKind::Retry => "retry",
            BulkKind::Replay => "replay",
        }
    }
}

/// A started (or counted) bulk job.
#[derive(Debug)]
pub struct BulkStart {
    /// Executions selected.
    pub total: i64,
    /// The job, unless it was a dry run.
    pub job: Option<flowgate_store::BulkJob>,
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store failed or the execution does not exist.
    #[error(transparent)]
    Store(#[from] flowgate_store::Error),
    /// The new execution could not be accepted.
    #[error(transparent)]
    Submit(#[from] SubmitError),
}

impl Engine {
    /// Queues a failed or cancelled execution again; it resumes from the failed step.
    ///
    /// # Errors
    /// Not found, a status that cannot be retried, or the store.
    pub async fn retry(&self, tenant: &str, id: &str) -> Result<ExecutionRow, flowgate_store::Error> {
        let row = self.inner.store.retry_execution(tenant, id, self.inner.clock.now_ms()).await?;
        self.inner.backlog.store(true, Ordering::Relaxed);
        self.inner.wake.notify_one();
        Ok(row)
    }

    /// Starts a new execution with the trigger of `id`, on the flow's current version
    /// (its original version if the flow no longer exists).
    ///
    /// # Errors
    /// Not found, or the store.
    pub async fn replay(&self, tenant: &str, id: &str) -> Result<Submitted, ReplayError> {
        self.replay_on(tenant, id, false).await
    }

    /// Like [`Engine::replay`]; with `original`, on the version the execution ran on.
    ///
    /// # Errors
    /// Not found, or the store.
    pub async fn replay_on(&self, tenant: &str, id: &str, original: bool) -> Result<Submitted, ReplayError> {
        let row = self.inner.store.execution(Some(tenant), id).await?.ok_or(flowgate_store::Error::NotFound)?;
        let current = if original {
            None
        } else {
            self.integration(tenant, &row.integration).await?.and_then(|ci| ci.flows.get(&row.flow).cloned())
        };
        let flow = match current {
            Some(f) => f,
            None => self.inner.flow_for(row.version_id, &row.flow).await.ok_or(flowgate_store::Error::NotFound)?,
        };
        let trigger = serde_json::from_str(&row.trigger).unwrap_or(Value::Null);
        Ok(self
            .submit(Submission {
                flow,
                trigger,
                kind: "replay",
                auth_label: row.auth_label,
                replay_of: Some(row.id),
                wait: Wait::No,
                options: Default::default(),
            })
            .await?)
    }

    /// Cancels a queued execution, or stops a running one at once.
    ///
    /// # Errors
    /// Not found, already ended, or the store.
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<ExecutionRow, flowgate_store::Error> {
        let row = self.inner.store.cancel_execution(tenant, id, self.inner.clock.now_ms()).await?;
        // A running one (it may be starting here this moment: see `running`).
        if row.status() == flowgate_store::Status::Running {
            self.inner.running.cancel(id, row.attempt);
        }
        Ok(row)
    }

    /// Lets the next execution of a blocked order key run (the failed one stays failed).
    ///
    /// # Errors
    /// Not found, not a blocking execution, or the store.
    pub async fn skip(&self, tenant: &str, id: &str) -> Result<ExecutionRow, flowgate_store::Error> {
        let row = self.inner.store.skip_execution(tenant, id).await?;
        self.inner.backlog.store(true, Ordering::Relaxed);
        self.inner.wake.notify_one();
        Ok(row)
    }

    /// Starts a bulk retry or replay of the executions `filter` selects, in the background;
    /// returns the job (its progress is in the store). With `dry_run`, only counts.
    ///
    /// # Errors
    /// The store.
    pub async fn bulk(
        &self,
        kind: BulkKind,
        mut filter: flowgate_store::ExecutionFilter,
        dry_run: bool,
    ) -> Result<BulkStart, flowgate_store::Error> {
        let store = &self.inner.store;
        let (total, last_seq) = store.count_executions(&filter).await?;
        if dry_run {
            return Ok(BulkStart { total, job: None });
        }
        // The job works on what matched now, not on executions it (or anyone) adds later.
        filter.through_seq = Some(last_seq);
        let job = flowgate_store::BulkJob {
            id: format!("bulk_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: filter.tenant.clone(),
            kind: kind.as_str().to_owned(),
            filter: serde_json::to_string(&filter).unwrap_or_default(),
            total,
            done: 0,
            failed: 0,
            status: "running".into(),
            created_at: self.inner.clock.now_ms(),
            finished_at: None,
        };
        store.create_bulk_job(&job).await?;
        let engine = self.clone();
        let id = job.id.clone();
        tokio::spawn(async move { engine.run_bulk(kind, filter, id).await });
        Ok(BulkStart { total, job: Some(job) })
    }

    async fn run_bulk(&self, kind: BulkKind, filter: flowgate_store::ExecutionFilter, job: String) {
        const PAGE: u32 = 200;
        let store = &self.inner.store;
        let (mut after, mut done, mut failed) = (0, 0i64, 0i64);
        loop {
            let page = match store.execution_ids(&filter, after, PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, job, "Bulk job stopped: cannot list executions.");
                    break;
                }
            };
            let Some(&(last, _)) = page.last() else { break };
            after = last;
            for (_, id) in page {
                let ok = match kind {
                    BulkKind::Retry => self.retry(&filter.tenant, &id).await.is_ok(),
                    BulkKind::Replay => self.replay(&filter.tenant, &id).await.is_ok(),
                };
                if ok { done += 1 } else { failed += 1 }
            }
            if let Err(e) = store.update_bulk_job(&job, done, failed, None).await {
                tracing::warn!(error = %e, job, "Cannot record bulk progress.");
            }
        }
        let _ = store.update_bulk_job(&job, done, failed, Some(self.inner.clock.now_ms())).await;
        tracing::info!(job, done, failed, "Bulk job finished.");
    }
}
