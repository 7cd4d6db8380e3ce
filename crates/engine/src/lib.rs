//! Flowgate's engine (DESIGN §3): turns trigger events into durable executions and runs them.
//!
//! The path of an event: [`Engine::submit`] writes it through the group [`committer`] and,
//! once durable, hands it straight to a worker (inserted already leased to this node) or,
//! when every worker is busy, leaves it queued for the [`dispatch`] loop to claim. A worker
//! runs the flow's compiled plan step by step ([`executor`]), journaling each attempt,
//! retrying with backoff, and answering sync callers through [`waiters`].
//!
//! # Layout
//! - [`compile`]: documents → compiled flows (validation shares it).
//! - [`registry`]: compiled versions and the webhook routing table.
//! - [`committer`]: group commit of all writes.
//! - [`executor`]: running one execution.
//! - `dispatch`: claiming queued work, renewing leases, the leader's work.
//! - `events`: what other nodes tell this one (new work, answers, cancels, changes).
//! - [`waiters`]: sync callers.
//! - [`backoff`], [`clock`]: retry delays and time.

#![warn(missing_docs)]

pub mod backoff;
pub mod clock;
pub mod committer;
pub mod compile;
mod dispatch;
mod events;
mod executor;
pub mod registry;
pub mod waiters;

#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock, SystemClock};
pub use compile::{AuthSpec, CompiledFlow, CompiledIntegration, Draft, FlowTrigger, KeyLocation, WebhookSpec};
pub use waiters::{SyncOutcome, Wait};

use committer::{CommitError, Committer};
use flowgate_expr::{Budget, Evaluator};
use flowgate_model::{Diagnostic, Format};
use flowgate_store::{
    ExecutionRow, Finish, NewExecution, NewVersion, PutOutcome, SharedStore, Status, StoreEvent, VersionRecord,
    WriteBatch,
};
use registry::Registry;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How an engine runs.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// This node's name: lease owner of the executions it runs.
    pub node_id: String,
    /// Base of the webhook URLs shown to users (`$flow.webhookUrl`).
    pub public_url: String,
    /// Executions running at once on this node.
    pub max_concurrency: usize,
    /// Lease length; renewed every third of it.
    pub lease: Duration,
    /// Budget of each expression evaluation.
    pub expression_budget: Budget,
    /// Threads that run slow expressions.
    pub expression_threads: usize,
    /// Retry delays up to this are slept inline; longer ones hand the execution back to the
    /// queue and free the worker.
    pub inline_backoff_max: Duration,
    /// Fallback poll of the queue (work from other nodes, expired leases).
    pub poll_interval: Duration,
    /// Run executions on this node (the `worker` role).
    pub workers: bool,
    /// Take part in the leader election and run leader-only work when elected (the
    /// `scheduler` role): putting executions of dead nodes back in the queue.
    pub leader: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            node_id: format!("node-{}", uuid::Uuid::new_v4().simple()),
            public_url: "http://127.0.0.1:8080".into(),
            max_concurrency: 512,
            lease: Duration::from_secs(30),
            expression_budget: Budget::DEFAULT,
            expression_threads: 2,
            inline_backoff_max: Duration::from_secs(2),
            poll_interval: Duration::from_secs(5),
            workers: true,
            leader: true,
        }
    }
}

/// Why an event could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The node is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The store could not commit it.
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// Why a definition could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// It has problems (all of them, located).
    #[error("the definition is invalid")]
    Invalid(Vec<Diagnostic>),
    /// It clashes with stored state (a webhook path another integration uses).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] flowgate_store::Error),
}

/// An accepted event.
pub struct Submitted {
    /// The execution's id.
    pub id: String,
    /// The answer, when the caller asked to wait.
    pub waiter: Option<oneshot::Receiver<SyncOutcome>>,
}

/// A new trigger event for a flow.
pub struct Submission {
    /// The flow to run.
    pub flow: Arc<CompiledFlow>,
    /// The trigger event (`$trigger`).
    pub trigger: Value,
    /// `webhook`, `manual`, `test` or `replay`.
    pub kind: &'static str,
    /// Label of the API key the caller used.
    pub auth_label: Option<String>,
    /// The execution this replays.
    pub replay_of: Option<String>,
    /// What the submitter waits for.
    pub wait: Wait,
}

pub(crate) struct Inner {
    store: SharedStore,
    settings: EngineSettings,
    clock: Arc<dyn Clock>,
    registry: Registry,
    committer: Committer,
    waiters: waiters::Waiters,
    evaluator: Evaluator,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
    wake: Notify,
    backlog: AtomicBool,
    running: Mutex<HashMap<String, CancellationToken>>,
    tracker: TaskTracker,
    stop_claims: CancellationToken,
    hard_stop: CancellationToken,
    stopping: AtomicBool,
    committer_closed: CancellationToken,
    committer_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    /// Wakes the claim loop at `at` (epoch ms) for a parked execution.
    fn wake_at(self: &Arc<Self>, at: i64) {
        self.backlog.store(true, Ordering::Relaxed);
        let delay = (at - self.clock.now_ms()).max(0) as u64;
        let inner = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            inner.backlog.store(true, Ordering::Relaxed);
            inner.wake.notify_one();
        });
    }

    /// Fails an execution that cannot run (its flow cannot be loaded).
    pub(crate) async fn fail_unrunnable(&self, id: &str, message: &str) {
        let finish = Finish {
            id: id.to_owned(),
            owner: self.settings.node_id.clone(),
            status: Status::Failed,
            output: None,
            response: None,
            error: Some(serde_json::json!({"code": "flow_unavailable", "message": message}).to_string()),
            failed_step: None,
            finished_at: self.clock.now_ms(),
        };
        let _ = self.committer.commit(WriteBatch { finishes: vec![finish], ..WriteBatch::default() }).await;
    }

    /// The compiled flow of a version, compiling the version if this node has not yet.
    async fn flow_for(&self, version_id: i64, flow: &str) -> Option<Arc<CompiledFlow>> {
        if let Some(ci) = self.registry.version(version_id) {
            return ci.flows.get(flow).cloned();
        }
        let record = self.store.version(version_id).await.ok()??;
        match compile::compile_record(record, &self.settings.public_url) {
            Ok(ci) => {
                let ci = Arc::new(ci);
                self.registry.remember(ci.clone());
                ci.flows.get(flow).cloned()
            }
            Err(diags) => {
                tracing::error!(version_id, problems = ?diags, "A stored version no longer compiles.");
                None
            }
        }
    }
}

/// The engine of one node.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Starts the engine on `store`: loads the stored integrations, then the committer, the
    /// claim loop and lease renewal.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn start(
        store: SharedStore,
        settings: EngineSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, flowgate_store::Error> {
        let committer_closed = CancellationToken::new();
        let (committer, committer_task) = Committer::start(store.clone(), committer_closed.clone());
        let inner = Arc::new(Inner {
            evaluator: Evaluator::new(settings.expression_budget, settings.expression_threads),
            http: flowgate_steps::util::http_client(),
            permits: Arc::new(Semaphore::new(if settings.workers { settings.max_concurrency } else { 0 })),
            store,
            settings,
            clock,
            registry: Registry::default(),
            committer,
            waiters: waiters::Waiters::default(),
            wake: Notify::new(),
            backlog: AtomicBool::new(true),
            running: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            stop_claims: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            stopping: AtomicBool::new(false),
            committer_closed,
            committer_task: Mutex::new(Some(committer_task)),
        });
        if !inner.store.shared() {
            // This process owns the store: leases left by a crash belong to nobody alive.
            let n = inner.store.expire_all_leases().await?;
            if n > 0 {
                tracing::info!(executions = n, "Resuming executions interrupted by the last stop.");
            }
        }
        for record in inner.store.all_integrations().await? {
            let (tenant, slug) = (record.tenant_id.clone(), record.slug.clone());
            match compile::compile_record(record, &inner.settings.public_url) {
                Ok(ci) => inner.registry.install(Arc::new(ci)),
                Err(diags) => {
                    tracing::error!(tenant, integration = slug, problems = ?diags, "A stored integration no longer compiles; it is not served.")
                }
            }
        }
        if inner.settings.workers {
            tokio::spawn(dispatch::claim_loop(inner.clone()));
            tokio::spawn(dispatch::renew_loop(inner.clone()));
        }
        if inner.settings.leader {
            tokio::spawn(dispatch::leader_loop(inner.clone()));
        }
        if let Some(events) = inner.store.subscribe() {
            tokio::spawn(events::listen(inner.clone(), events));
        }
        Ok(Engine { inner })
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    /// Compiled flows and routes.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Checks a definition without storing it.
    ///
    /// # Errors
    /// Every problem found, located.
    pub fn validate(text: &str, format: Format) -> Result<Draft, Vec<Diagnostic>> {
        compile::compile(text, format)
    }

    /// Checks, stores and serves a definition in `tenant`. An unchanged document keeps its
    /// version.
    ///
    /// # Errors
    /// Problems in the document, a webhook path taken by another integration, or the store.
    pub async fn apply(
        &self,
        tenant: &str,
        text: &str,
        format: Format,
    ) -> Result<(PutOutcome, Arc<CompiledIntegration>), ApplyError> {
        let draft = compile::compile(text, format).map_err(ApplyError::Invalid)?;
        let new = NewVersion {
            tenant_id: tenant.to_owned(),
            slug: draft.definition.integration.clone(),
            hash: draft.hash.clone(),
            format: match format {
                Format::Yaml => "yaml",
                Format::Json => "json",
            }
            .to_owned(),
            source: text.to_owned(),
            document: draft.document.to_string(),
            routes: draft.routes(),
            now: self.inner.clock.now_ms(),
        };
        let outcome = self.inner.store.put_integration(&new).await.map_err(|e| match e {
            flowgate_store::Error::Conflict(m) => ApplyError::Conflict(m),
            other => ApplyError::Store(other),
        })?;
        if let (PutOutcome::Unchanged(r), Some(ci)) = (&outcome, self.inner.registry.integration(tenant, &new.slug))
            && ci.record.id == r.id
        {
            return Ok((outcome, ci));
        }
        let ci = Arc::new(draft.into_compiled(outcome.record().clone(), &self.inner.settings.public_url));
        self.inner.registry.install(ci.clone());
        self.announce_integration(tenant, &new.slug).await;
        Ok((outcome, ci))
    }

    /// Deletes an integration: its webhooks stop at once; its history stays.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn delete(&self, tenant: &str, slug: &str) -> Result<bool, flowgate_store::Error> {
        let deleted = self.inner.store.delete_integration(tenant, slug).await?;
        self.inner.registry.remove(tenant, slug);
        self.announce_integration(tenant, slug).await;
        Ok(deleted)
    }

    /// Tells the other nodes an integration changed (they reload it).
    async fn announce_integration(&self, tenant: &str, slug: &str) {
        let event = StoreEvent::Integration { tenant: tenant.to_owned(), slug: slug.to_owned() };
        if let Err(e) = self.inner.store.notify(&[event]).await {
            tracing::warn!(error = %e, "Could not tell the other nodes about a changed integration.");
        }
    }

    /// The current version of an integration, compiling it from the store if needed.
    pub async fn integration(
        &self,
        tenant: &str,
        slug: &str,
    ) -> Result<Option<Arc<CompiledIntegration>>, flowgate_store::Error> {
        if let Some(ci) = self.inner.registry.integration(tenant, slug) {
            return Ok(Some(ci));
        }
        let Some(record) = self.inner.store.integration(tenant, slug).await? else { return Ok(None) };
        Ok(compile::compile_record(record, &self.inner.settings.public_url).ok().map(|ci| {
            let ci = Arc::new(ci);
            self.inner.registry.install(ci.clone());
            ci
        }))
    }

    /// Commits a trigger event as a new execution and starts it. Returns once the event is
    /// durable.
    ///
    /// # Errors
    /// When shutting down or when the commit fails; nothing was accepted then.
    pub async fn submit(&self, s: Submission) -> Result<Submitted, SubmitError> {
        let inner = &self.inner;
        if inner.stopping.load(Ordering::Relaxed) {
            return Err(SubmitError::ShuttingDown);
        }
        let id = uuid::Uuid::now_v7().to_string();
        let now = inner.clock.now_ms();
        let permit = inner.permits.clone().try_acquire_owned().ok();
        let leased = permit.is_some();
        let new = NewExecution {
            id: id.clone(),
            tenant_id: s.flow.tenant.clone(),
            integration: s.flow.integration.clone(),
            flow: s.flow.slug.clone(),
            version_id: s.flow.version_id,
            status: if leased { Status::Running } else { Status::Queued },
            lease_owner: leased.then(|| inner.settings.node_id.clone()),
            lease_until: leased.then(|| now + inner.settings.lease.as_millis() as i64),
            trigger_kind: s.kind,
            trigger: s.trigger.to_string(),

            auth_label: s.auth_label,
            run_after: now,
            created_at: now,
            replay_of: s.replay_of,
        };
        let waiter = (s.wait != Wait::No).then(|| inner.waiters.register(&id, s.wait));
        let mut batch = WriteBatch { inserts: vec![new], ..WriteBatch::default() };
        if !leased {
            // Any node with a free worker may take it.
            batch.events.push(StoreEvent::Work);
        }
        // Starting the execution is tied to the commit, not to this future: a caller that
        // hangs up after the event is durable must not leave it leased and never run.
        let start: Box<dyn FnOnce() + Send> = {
            let (inner, id, flow, trigger) = (inner.clone(), id.clone(), s.flow, s.trigger);
            match permit {
                Some(permit) => Box::new(move || {
                    let job = executor::Job {
                        id,
                        flow,
                        trigger: Arc::new(trigger),
                        trigger_kind: s.kind.to_owned(),
                        round: 1,
                        created_at: now,
                        resumed: false,
                        permit,
                    };
                    inner.tracker.spawn(executor::run(inner.clone(), job));
                }),
                None => Box::new(move || {
                    inner.backlog.store(true, Ordering::Relaxed);
                    inner.wake.notify_one();
                }),
            }
        };
        if let Err(e) = inner.committer.commit_then(batch, Some(start)).await {
            inner.waiters.remove(&id);
            return Err(e.into());
        }
        accepted_counter(s.kind).increment(1);
        Ok(Submitted { id, waiter })
    }

    /// Gives up waiting for an execution's answer.
    pub fn forget_waiter(&self, id: &str) {
        self.inner.waiters.remove(id);
    }

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
        let row = self.inner.store.execution(Some(tenant), id).await?.ok_or(flowgate_store::Error::NotFound)?;
        let current = self.integration(tenant, &row.integration).await?.and_then(|ci| ci.flows.get(&row.flow).cloned());
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
            })
            .await?)
    }

    /// Cancels a queued execution, or stops a running one at once.
    ///
    /// # Errors
    /// Not found, already ended, or the store.
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<ExecutionRow, flowgate_store::Error> {
        let row = self.inner.store.cancel_execution(tenant, id, self.inner.clock.now_ms()).await?;
        if let Some(token) = self.inner.running.lock().expect("running lock").get(id) {
            token.cancel();
        }
        Ok(row)
    }

    /// Executions running on this node now.
    pub fn running(&self) -> usize {
        self.inner.running.lock().expect("running lock").len()
    }

    /// Stops: no new events or claims; running executions get `grace` to finish, then are
    /// interrupted (their journal kept) and handed back to the queue; the last writes are
    /// committed.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.stopping.store(true, Ordering::Relaxed);
        inner.stop_claims.cancel();
        inner.tracker.close();
        if tokio::time::timeout(grace, inner.tracker.wait()).await.is_err() {
            tracing::warn!(
                running = self.running(),
                "Grace period over; handing running executions back to the queue."
            );
            inner.hard_stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), inner.tracker.wait()).await;
        }
        inner.hard_stop.cancel();
        inner.committer_closed.cancel();
        let task = inner.committer_task.lock().expect("committer lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
        match inner.store.release_leases(&inner.settings.node_id, inner.clock.now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(executions = n, "Handed executions back to the queue."),
            Err(e) => tracing::warn!(error = %e, "Could not hand executions back; their leases will expire."),
        }
    }
}

/// The accepted-events counter of a trigger kind, looked up once per kind (labelled lookups
/// on every event cost hashing on the ingress hot path).
fn accepted_counter(kind: &'static str) -> metrics::Counter {
    static COUNTERS: std::sync::OnceLock<Mutex<HashMap<&'static str, metrics::Counter>>> = std::sync::OnceLock::new();
    let mut map = COUNTERS.get_or_init(Default::default).lock().expect("counters lock");
    map.entry(kind).or_insert_with(|| metrics::counter!("flowgate_events_accepted_total", "trigger" => kind)).clone()
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

/// Facts about a stored version, for listings.
pub fn version_summary(r: &VersionRecord) -> Value {
    serde_json::json!({ "id": r.id, "version": r.version, "hash": r.hash, "createdAt": clock::rfc3339(r.created_at) })
}
