//! Group commit: every durable write of a node goes through one task that merges whatever
//! is waiting into one transaction.
//!
//! While a transaction (and its fsync) is in flight, new writes queue up; the next
//! transaction takes them all. Under load, hundreds of webhook events and journal entries
//! share one fsync; when idle, a lone write commits at once. Callers that must not go on
//! before their write is durable (ingress before answering 2xx, the executor before a side
//! effect) await the commit; the channel is bounded, so a slow disk pushes back on ingress
//! instead of growing memory.
//!
//! A commit that fails may still have happened: the connection can drop after the server
//! committed and before it said so. Acknowledging nothing would then leave executions in
//! the store, leased to this node, that nobody runs (issue 12). So a failed commit that
//! inserted executions is reconciled first: if they are there, it happened (the transaction
//! is atomic) and everyone is told so; if the store cannot tell, the callers are told it
//! failed and those executions are handed back to the queue as soon as the store answers.

use flowgate_store::{CommitOutcome, SharedStore, WriteBatch};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Writes waiting for the committer; beyond this, callers wait to enqueue.
pub const COMMIT_QUEUE: usize = 16 * 1024;
/// Most jobs merged into one transaction.
const MAX_JOBS_PER_COMMIT: usize = 4096;

/// A commit that failed; shared by every write of the batch.
#[derive(Debug, Clone, thiserror::Error)]
#[error("commit failed: {0}")]
pub struct CommitError(pub(crate) Arc<str>);

/// Work to do once a write is durable, whether or not its caller still waits; it learns
/// which new executions were repeats (not inserted).
pub type AfterCommit = Box<dyn FnOnce(&CommitOutcome) + Send>;

/// What a caller learns from its commit.
pub type CommitResult = Result<Arc<CommitOutcome>, CommitError>;

struct Job {
    batch: WriteBatch,
    done: Option<oneshot::Sender<CommitResult>>,
    after: Option<AfterCommit>,
}

/// Handle to the committer task.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the committer; it stops once `closed` is cancelled and the queue is drained.
    pub fn start(store: SharedStore, closed: CancellationToken) -> (Committer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(COMMIT_QUEUE);
        let handle = tokio::spawn(run(store, rx, closed));
        (Committer { tx }, handle)
    }

    /// Commits `batch` (with whatever else is waiting) and returns once it is durable.
    ///
    /// # Errors
    /// When the transaction failed or the committer has stopped.
    pub async fn commit(&self, batch: WriteBatch) -> Result<(), CommitError> {
        self.commit_then(batch, None).await.map(|_| ())
    }

    /// Like [`Committer::commit`], and runs `after` as soon as the batch is durable — even if
    /// the caller stopped waiting (an HTTP client that hung up must not strand an execution
    /// it already committed).
    ///
    /// # Errors
    /// When the transaction failed or the committer has stopped (`after` is dropped then).
    pub async fn commit_then(&self, batch: WriteBatch, after: Option<AfterCommit>) -> CommitResult {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { batch, done: Some(done), after })
            .await
            .map_err(|_| CommitError("the committer has stopped".into()))?;
        wait.await.unwrap_or_else(|_| Err(CommitError("the committer has stopped".into())))
    }
}

async fn run(store: SharedStore, mut rx: mpsc::Receiver<Job>, closed: CancellationToken) {
    loop {
        let first = tokio::select! {
            biased;
            job = rx.recv() => job,
            _ = closed.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { return };
        let mut batch = first.batch;
        let mut waiters: Vec<oneshot::Sender<CommitResult>> = first.done.into_iter().collect();
        let mut afters: Vec<AfterCommit> = first.after.into_iter().collect();
        let mut jobs = 1;
        while jobs < MAX_JOBS_PER_COMMIT {
            match rx.try_recv() {
                Ok(mut job) => {
                    batch.append(&mut job.batch);
                    waiters.extend(job.done);
                    afters.extend(job.after);
                    jobs += 1;
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let inserts = batch.inserts.len();
        let result = match store.commit(&batch).await {
            Ok(outcome) => Ok(Arc::new(outcome)),
            Err(e) => {
                tracing::error!(error = %e, jobs, "Commit failed.");
                reconcile(&store, &batch).await.map(Arc::new).ok_or_else(|| CommitError(e.to_string().into()))
            }
        };
        metrics::histogram!("flowgate_commit_duration_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("flowgate_commit_jobs").record(jobs as f64);
        if inserts > 0 {
            metrics::histogram!("flowgate_ingest_batch_size").record(inserts as f64);
        }
        if let Ok(outcome) = &result {
            for after in afters {
                after(outcome);
            }
        }
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

/// How long a failed commit's outcome is looked for before its callers are told it failed.
const RECONCILE_FOR: Duration = Duration::from_secs(5);

/// Whether a failed commit happened after all: `Some` (with its outcome) when the executions
/// it inserted are in the store. `None` when they are not, or when the store cannot tell
/// within [`RECONCILE_FOR`]; then those it inserted leased to this node (if any made it) are
/// handed back to the queue in the background, once the store answers again.
async fn reconcile(store: &SharedStore, batch: &WriteBatch) -> Option<CommitOutcome> {
    if batch.inserts.is_empty() {
        return None;
    }
    let deadline = Instant::now() + RECONCILE_FOR;
    let mut pause = Duration::from_millis(100);
    loop {
        match found(store, batch).await {
            Ok(Some(outcome)) => {
                tracing::warn!(inserts = batch.inserts.len(), "The failed commit had happened; acknowledging it.");
                metrics::counter!("flowgate_commits_reconciled_total", "outcome" => "committed").increment(1);
                return Some(outcome);
            }
            Ok(None) => {
                metrics::counter!("flowgate_commits_reconciled_total", "outcome" => "absent").increment(1);
                return None;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                tracing::error!(error = %e, "Cannot tell whether a failed commit happened; its executions are released when the store answers.");
                metrics::counter!("flowgate_commits_reconciled_total", "outcome" => "unknown").increment(1);
                release_when_possible(store.clone(), batch);
                return None;
            }
        }
    }
}

/// Looks for a batch's inserts: `Some` when any is there (then all non-duplicates are, and
/// those missing were repeats of an earlier delivery), `None` when none is.
async fn found(store: &SharedStore, batch: &WriteBatch) -> flowgate_store::Result<Option<CommitOutcome>> {
    let mut present = false;
    let mut missing = Vec::new();
    for new in &batch.inserts {
        if store.execution(None, &new.id).await?.is_some() {
            present = true;
        } else {
            missing.push(new);
        }
    }
    if !present {
        return Ok(None);
    }
    let mut duplicates = Vec::new();
    for new in missing {
        let first = match &new.dedup {
            Some(d) => store.dedup_lookup(new.flow_key(), &d.key, i64::MIN).await?,
            None => None,
        };
        // Without a first one to point at, the caller gets its own (absent) id: a lookup
        // answers 404, and the sender's retry finds the first through the key.
        duplicates.push((new.id.clone(), first.unwrap_or_else(|| new.id.clone())));
    }
    Ok(Some(CommitOutcome { duplicates }))
}

/// Hands back the executions of a batch in doubt that were inserted leased to this node:
/// if they were committed, no worker runs them and no one renews their lease.
fn release_when_possible(store: SharedStore, batch: &WriteBatch) {
    let leased: Vec<(String, String)> =
        batch.inserts.iter().filter_map(|n| n.lease_owner.clone().map(|owner| (owner, n.id.clone()))).collect();
    if leased.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(250);
        for _ in 0..120 {
            let mut left = false;
            for (owner, id) in &leased {
                if store.release_lease(owner, id).await.is_err() {
                    left = true;
                }
            }
            if !left {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    });
}
