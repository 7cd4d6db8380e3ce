//! Group commit: every durable write of a node goes through one task that merges whatever
//! is waiting into one transaction.
//!
//! While a transaction (and its fsync) is in flight, new writes queue up; the next
//! transaction takes them all. Under load, hundreds of webhook events and journal entries
//! share one fsync; when idle, a lone write commits at once. Callers that must not go on
//! before their write is durable (ingress before answering 2xx, the executor before a side
//! effect) await the commit; the channel is bounded, so a slow disk pushes back on ingress
//! instead of growing memory.

use flowgate_store::{CommitOutcome, SharedStore, WriteBatch};
use std::sync::Arc;
use std::time::Instant;
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
        let result = store.commit(&batch).await.map(Arc::new).map_err(|e| {
            tracing::error!(error = %e, jobs, "Commit failed.");
            CommitError(e.to_string().into())
        });
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
