//! The node's shared state ([`Inner`]): what every part of the engine on this node holds —
//! the store, the committer, the registry of compiled integrations, the workers' permits and
//! shares, waiters of sync callers, the memory budget, the wake-ups. The public face is
//! [`Engine`](crate::Engine), a cheap handle to it.

use crate::*;

/// A tenant's mailer and what it was made from: its sealed settings and the address its
/// host resolved to (when the outbound policy pins one).
type TenantMailer = ((String, Option<std::net::IpAddr>), flowgate_mailer::Mailer);

pub(crate) struct Inner {
    /// The database: everything acknowledged is committed here first.
    pub(crate) store: SharedStore,
    /// How this node runs (limits, roles, policies).
    pub(crate) settings: EngineSettings,
    /// The time every decision reads (injectable: tests move it).
    pub(crate) clock: Arc<dyn Clock>,
    /// The compiled integrations and the routing tables (webhook paths, e-mail addresses, switches).
    pub(crate) registry: Registry,
    /// The group commit: one transaction carries many writes.
    pub(crate) committer: Committer,
    /// Callers waiting for an execution's answer (sync webhooks, `run?wait`, `call` steps).
    pub(crate) waiters: waiters::Waiters,
    /// Evaluates expressions under their budget (inline, then on its thread pool).
    pub(crate) evaluator: Evaluator,
    /// Evaluates dry runs' expressions (issue 20): one thread of its own beside the pool's.
    pub(crate) dry_evaluator: Evaluator,
    /// The outbound HTTP client, under the outbound address policy.
    pub(crate) http: reqwest::Client,
    /// Worker slots: an execution runs while it holds one.
    pub(crate) permits: Arc<Semaphore>,
    /// Slots of dry runs' executions (`EngineSettings::dry_run_workers`): not the workers'.
    pub(crate) dry_permits: Arc<Semaphore>,
    /// Wakes the claim loop (work was queued or a slot was freed).
    pub(crate) wake: Notify,
    /// Queued work may be waiting: the claim loop should look.
    pub(crate) backlog: AtomicBool,
    /// Executions running on this node, with the token that cancels each.
    pub(crate) running: crate::running::Running,
    /// Every task the engine spawned, awaited at shutdown.
    pub(crate) tracker: TaskTracker,
    /// Cancelled at shutdown: claim no more work.
    pub(crate) stop_claims: CancellationToken,
    /// Cancelled when the shutdown grace ends: running executions stop.
    pub(crate) hard_stop: CancellationToken,
    /// Set at shutdown: new events are refused.
    pub(crate) stopping: AtomicBool,
    /// Submissions in progress (backpressure).
    pub(crate) submitting: std::sync::atomic::AtomicUsize,
    /// The queue's last measured depth (backpressure).
    pub(crate) backlog_depth: std::sync::atomic::AtomicI64,
    /// Cancelled once the committer has drained and stopped.
    pub(crate) committer_closed: CancellationToken,
    /// The committer's task, awaited at shutdown.
    pub(crate) committer_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Wakes the scheduler (a flow changed, a poll ended, the clock was moved).
    pub(crate) trigger_wake: Notify,
    /// This node holds the leadership (set by the leader loop).
    pub(crate) leading: AtomicBool,
    /// Seals and opens secrets at rest.
    pub(crate) sealer: flowgate_secrets::Sealer,
    /// Wakes the delivery loop (a new delivery, a resend, a free slot).
    pub(crate) delivery_wake: Notify,
    /// Notifications are sent one at a time: each one's rate-limit check sees the ones before.
    pub(crate) notify_gate: tokio::sync::Mutex<()>,
    /// Each tenant's mailer, kept while its sealed settings and checked address stay the same.
    pub(crate) tenant_mailers: std::sync::Mutex<HashMap<String, TenantMailer>>,
    /// The tenants' log sources.
    pub(crate) log_sinks: logs::LogSinks,
    /// The queue's lanes by crash count (`dispatch::lanes`), with what runs in each.
    pub(crate) lanes: Vec<dispatch::Lane>,
    /// Memory for events in flight.
    pub(crate) memory: budget::MemoryBudget,
    /// Workers held per tenant and per flow.
    pub(crate) shares: Arc<shares::Shares>,
    /// OAuth connections' tokens held here.
    pub(crate) tokens: crate::connections::tokens::Tokens,
    /// Dry runs running on this node, per tenant (each tenant may run a few at once).
    pub(crate) dry_runs: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl Inner {
    /// What a caller of an execution learns from its stored row (it ran elsewhere, or this
    /// is a repeated delivery): its end, else its `respond` answer, else nothing yet. Stored
    /// texts hold markers for secrets; the caller gets what the flow answered, restored.
    pub(crate) async fn stored_outcome(&self, row: &ExecutionRow) -> Option<SyncOutcome> {
        let flow = self.flow_for(row.version_id, &row.flow).await;
        let parse = |t: &Option<String>| -> Option<Value> {
            let t = t.as_deref()?;
            let restored = match &flow {
                Some(f) => f.redactor.restore_json_text(t),
                None => std::borrow::Cow::Borrowed(t),
            };
            serde_json::from_str(&restored).ok()
        };
        let response: Option<flowgate_steps::Response> =
            parse(&row.response).and_then(|v| serde_json::from_value(v).ok());
        if row.status().is_final() {
            let (output, error) = (parse(&row.output), parse(&row.error));
            return Some(SyncOutcome::Finished { status: row.status(), output, error, response });
        }
        response.map(SyncOutcome::Responded)
    }

    /// Wakes the claim loop when a tenant or flow that was at its share has room again (its
    /// queued executions may be claimed now).
    pub(crate) fn room_waker(self: &Arc<Self>) -> impl Fn() + Send + Sync + 'static {
        let inner = Arc::downgrade(self);
        move || {
            if let Some(inner) = inner.upgrade() {
                inner.backlog.store(true, Ordering::Relaxed);
                inner.wake.notify_one();
            }
        }
    }

    /// Wakes the claim loop at `at` (epoch ms) for a parked execution.
    pub(crate) fn wake_at(self: &Arc<Self>, at: i64) {
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
            holds_order: false,
            scrub: Scrub::Keep,
        };
        let _ = self.committer.commit(WriteBatch { finishes: vec![finish], ..WriteBatch::default() }).await;
    }

    /// Compiles a stored version for the integration's deployment (its config values).
    pub(crate) async fn build(&self, record: VersionRecord) -> Result<CompiledIntegration, Vec<Diagnostic>> {
        let deployment =
            self.store.deployment(record.integration_key()).await.map_err(|e| {
                vec![Diagnostic { path: String::new(), line: None, column: None, message: e.to_string() }]
            })?;
        deploy::build(record, deployment.as_ref(), &self.sealer, &self.settings.public_url)
    }

    /// The compiled flow of a version, compiling the version if this node has not yet.
    pub(crate) async fn flow_for(&self, version_id: i64, flow: &str) -> Option<Arc<CompiledFlow>> {
        if let Some(ci) = self.registry.version(version_id) {
            return ci.flows.get(flow).cloned();
        }
        let record = self.store.version(version_id).await.ok()??;
        match self.build(record).await {
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
