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
//! - [`deploy`]: deployments, config values, sealed secrets and lifecycle flows.
//! - [`testing`]: flow tests (`tests:`) on a throwaway engine.
//! - [`committer`]: group commit of all writes.
//! - [`executor`]: running one execution.
//! - `dispatch`: claiming queued work, renewing leases, the leader's work.
//! - `events`: what other nodes tell this one (new work, answers, cancels, changes).
//! - `triggers`: the scheduler: schedules and polls fire on the leader.
//! - [`waiters`]: sync callers.
//! - [`verify`]: signed webhooks (Standard Webhooks, GitHub, Stripe, generic HMAC).
//! - [`backoff`], [`clock`]: retry delays and time.
//! - [`budget`]: the memory budget for events in flight.
//! - `shares`: fair shares of the node's workers per tenant and per flow.

#![warn(missing_docs)]

pub mod backoff;
pub mod budget;
pub mod call;
pub mod clock;
pub mod committer;
pub mod compile;
pub mod deliveries;
pub mod deploy;
mod dispatch;
mod events;
mod executor;
mod logs;

mod node;
mod operations;
pub mod registry;
mod shares;
mod submit;
pub mod testing;
mod triggers;
pub mod verify;
pub mod waiters;

#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock, SystemClock};
pub use compile::{
    AuthSpec, CompiledFlow, CompiledIntegration, Draft, ExecutionPolicy, FlowTrigger, InboundWebhook, KeyLocation,
    Order,
};
pub(crate) use node::Inner;
pub use operations::{BulkKind, BulkStart, ReplayError};
pub(crate) use submit::TriggerEvent;
pub use submit::{Submission, SubmitError, SubmitOptions, Submitted};
pub use waiters::{SyncOutcome, Wait};

use committer::{CommitError, Committer};
use flowgate_expr::{Budget, Evaluator};
use flowgate_model::{Diagnostic, Format};
use flowgate_store::{
    Dedup, ExecutionRow, Finish, NewExecution, NewVersion, PutOutcome, Scrub, SharedStore, Status, StoreEvent,
    VersionRecord, WriteBatch,
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
    /// Percent of them one tenant may hold (the rest stays for others).
    pub tenant_share_pct: u8,
    /// Percent of them one flow may hold.
    pub flow_share_pct: u8,
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
    /// Events being committed at once beyond which ingress answers 503.
    pub max_in_flight: usize,
    /// Queued executions beyond which ingress answers 503.
    pub max_backlog: i64,
    /// Finished executions older than this are deleted (the leader does it in the background).
    pub retention_age: Option<Duration>,
    /// At most this many finished executions are kept in all.
    pub retention_count: Option<u64>,
    /// How often the leader runs retention and forgets expired delivery identities.
    pub housekeeping_every: Duration,
    /// How often the queue's depth is measured for backpressure.
    pub backlog_every: Duration,
    /// Take part in the leader election and run leader-only work when elected (the
    /// `scheduler` role): putting executions of dead nodes back in the queue, firing
    /// schedules and running polls.
    pub leader: bool,
    /// Domain of the derived inbound e-mail addresses (`<flow>.<integration>.<tenant>@…`).
    pub mail_domain: String,
    /// Longest the scheduler sleeps between looks at the clock (a wall-clock change or an
    /// injected clock is noticed within it).
    pub trigger_tick: Duration,
    /// Seals and opens secrets at rest (config values, literal credentials); default: a key
    /// made for this process only (fine for throwaway engines, not for a server).
    pub sealer: Option<flowgate_secrets::Sealer>,
    /// Run `deploy`/`undeploy` flows when deployments change (off for flow tests).
    pub lifecycle: bool,
    /// Sends e-mail (the `email` step, notifications); none: those deliveries fail.
    pub mailer: Option<flowgate_mailer::Mailer>,
    /// Which addresses outbound requests may reach.
    pub outbound: flowgate_steps::outbound::OutboundPolicy,
    /// Where `file` log sources may write: a relative path lands in `<log_dir>/<tenant>/`,
    /// an absolute one must be inside `log_dir`. None: anywhere (embedding only; the server
    /// always sets it).
    pub log_dir: Option<std::path::PathBuf>,
    /// Memory for events being received, parsed and run at once on this node, in bytes of
    /// their trees (see [`budget`]).
    pub memory_in_flight: usize,
    /// Largest step output journaled, in bytes of JSON; a larger one fails the step
    /// (`output_too_large`).
    pub max_step_output: usize,
    /// An execution whose node died under it this many times in a row, without progress in
    /// between, is failed (`crashed_node`) instead of resumed again; 0: never. Until then it
    /// is resumed apart from other work (see `dispatch::lanes`).
    pub crash_limit: u32,
    /// Executions the `call` steps below one root execution may start at once, then as
    /// many an hour (see `call`).
    pub max_call_tree: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            node_id: format!("node-{}", uuid::Uuid::new_v4().simple()),
            public_url: "http://127.0.0.1:8080".into(),
            max_concurrency: 1024,
            tenant_share_pct: 50,
            flow_share_pct: 25,
            lease: Duration::from_secs(30),
            expression_budget: Budget::DEFAULT,
            expression_threads: 2,
            inline_backoff_max: Duration::from_secs(2),
            poll_interval: Duration::from_secs(5),
            workers: true,
            leader: true,
            max_in_flight: 16 * 1024,
            max_backlog: 5_000_000,
            retention_age: None,
            retention_count: None,
            housekeeping_every: Duration::from_secs(10),
            backlog_every: Duration::from_secs(2),
            mail_domain: "localhost".into(),
            trigger_tick: Duration::from_secs(1),
            sealer: None,
            lifecycle: true,
            mailer: None,
            outbound: flowgate_steps::outbound::OutboundPolicy::default(),
            log_dir: None,
            crash_limit: 3,
            max_call_tree: call::MAX_TREE,
            memory_in_flight: 256 * 1024 * 1024,
            max_step_output: 16 * 1024 * 1024,
        }
    }
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
        let registry = Registry::new(&settings.mail_domain);
        let sealer = settings
            .sealer
            .clone()
            .unwrap_or_else(|| flowgate_secrets::Sealer::new(flowgate_secrets::MasterKey::generate()));
        let lanes = dispatch::lanes(settings.crash_limit);
        let memory = budget::MemoryBudget::new(settings.memory_in_flight);
        let (settings_slots, settings_tenant_pct, settings_flow_pct) =
            (settings.max_concurrency, settings.tenant_share_pct, settings.flow_share_pct);
        let inner = Arc::new(Inner {
            evaluator: Evaluator::new(settings.expression_budget, settings.expression_threads),
            http: flowgate_steps::util::http_client_with(&settings.outbound),
            permits: Arc::new(Semaphore::new(if settings.workers { settings.max_concurrency } else { 0 })),
            store,
            settings,
            clock,
            registry,
            committer,
            waiters: waiters::Waiters::default(),
            wake: Notify::new(),
            backlog: AtomicBool::new(true),
            running: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            stop_claims: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            stopping: AtomicBool::new(false),
            submitting: std::sync::atomic::AtomicUsize::new(0),
            backlog_depth: std::sync::atomic::AtomicI64::new(0),
            committer_closed,
            committer_task: Mutex::new(Some(committer_task)),
            trigger_wake: Notify::new(),
            leading: AtomicBool::new(false),
            sealer: sealer.clone(),
            delivery_wake: Notify::new(),
            notify_gate: tokio::sync::Mutex::new(()),
            tenant_mailers: std::sync::Mutex::new(HashMap::new()),
            log_sinks: logs::LogSinks::default(),
            lanes,
            memory,
            shares: Arc::new(shares::Shares::new(settings_slots, settings_tenant_pct, settings_flow_pct)),
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
            match inner.build(record).await {
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
        inner.log_sinks.reload(inner.store.all_log_sources().await?, &inner.sealer, &inner.settings.outbound).await;
        match inner.store.flow_switches().await {
            Ok(all) => {
                inner.registry.set_switches(all.into_iter().map(|s| ((s.tenant_id, s.integration, s.flow), s.active)))
            }
            Err(e) => return Err(e),
        }
        if inner.settings.leader {
            tokio::spawn(dispatch::leader_loop(inner.clone()));
            tokio::spawn(triggers::scheduler_loop(inner.clone()));
            tokio::spawn(deliveries::delivery_loop(inner.clone()));
        }
        tokio::spawn(dispatch::backlog_loop(inner.clone()));
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

    /// [`Engine::validate`] on a blocking thread: a definition of thousands of expressions
    /// takes a while to compile, and the async threads serve everyone else meanwhile.
    ///
    /// # Errors
    /// Every problem found, located.
    pub async fn validate_off_thread(text: String, format: Format) -> Result<Draft, Vec<Diagnostic>> {
        match tokio::task::spawn_blocking(move || compile::compile(&text, format)).await {
            Ok(r) => r,
            Err(e) => Err(vec![Diagnostic {
                path: String::new(),
                line: None,
                column: None,
                message: format!("the definition could not be checked: {e}"),
            }]),
        }
    }

    /// Checks, stores and serves a definition in `tenant`, and deploys it there (with its
    /// defaults the first time; an upgrade keeps the deployment's values and, when the
    /// integration is live, runs its `deploy` flows). An unchanged document keeps its version.
    /// Literal credentials are sealed, not stored in the text.
    ///
    /// # Errors
    /// Problems in the document, a webhook path or address taken elsewhere, or the store.
    pub async fn apply(
        &self,
        tenant: &str,
        text: &str,
        format: Format,
    ) -> Result<(PutOutcome, Arc<CompiledIntegration>), ApplyError> {
        let inner = &self.inner;
        // A document read from the API holds markers for the current literal credentials: it is
        // checked once they are back in (a marker is not a valid secret of every kind, e.g. a
        // Standard Webhooks key); until then only its slug is read.
        let has_markers = text.contains(flowgate_secrets::MARKER_PREFIX);
        let first = if has_markers {
            None
        } else {
            Some(Engine::validate_off_thread(text.to_owned(), format).await.map_err(ApplyError::Invalid)?)
        };
        let slug = match &first {
            Some(draft) => draft.definition.integration.clone(),
            None => match flowgate_model::source::parse(text, format)
                .ok()
                .and_then(|d| d.value.get("integration").and_then(Value::as_str).map(str::to_owned))
            {
                Some(slug) => slug,
                // No slug to look the markers up by: the full check says what is wrong.
                None => {
                    Engine::validate_off_thread(text.to_owned(), format).await.map_err(ApplyError::Invalid)?;
                    return Err(ApplyError::Invalid(vec![Diagnostic {
                        path: "integration".into(),
                        line: None,
                        column: None,
                        message: "missing integration slug".into(),
                    }]));
                }
            },
        };
        let current = inner.store.integration(tenant, &slug).await?;
        let text = match &current {
            Some(cur) if text.contains(flowgate_secrets::MARKER_PREFIX) => {
                let literals = deploy::open_literals(&inner.sealer, cur).map_err(ApplyError::Conflict)?;
                deploy::restore_source(text, &literals)
            }
            _ => text.to_owned(),
        };
        if text.contains(flowgate_secrets::MARKER_PREFIX) {
            return Err(ApplyError::Invalid(vec![Diagnostic {
                path: String::new(),
                line: None,
                column: None,
                message: "the document holds a secret marker («secret:…») this integration does not have: write the \
                          credential itself, or apply the document as read from the current version"
                    .into(),
            }]));
        }
        let draft = match first {
            Some(draft) => draft,
            None => Engine::validate_off_thread(text.clone(), format).await.map_err(ApplyError::Invalid)?,
        };
        foreign_addresses(&draft, tenant, &inner.settings.mail_domain).map_err(ApplyError::Invalid)?;
        let mut document = draft.document.clone();
        let literals = deploy::extract_literals(&mut document);
        let now = inner.clock.now_ms();
        let new = NewVersion {
            tenant_id: tenant.to_owned(),
            slug: slug.clone(),
            hash: draft.hash.clone(),
            format: match format {
                Format::Yaml => "yaml",
                Format::Json => "json",
            }
            .to_owned(),
            source: deploy::redact_source(&text, &literals),
            document: document.to_string(),
            routes: draft.routes(),
            emails: draft.emails(),
            secrets: deploy::seal_literals(&inner.sealer, tenant, &slug, &literals),
            now,
        };
        let outcome = inner.store.put_integration(&new).await.map_err(|e| match e {
            flowgate_store::Error::Conflict(m) => ApplyError::Conflict(m),
            other => ApplyError::Store(other),
        })?;
        if let (PutOutcome::Unchanged(r), Some(ci)) = (&outcome, inner.registry.integration(tenant, &slug))
            && ci.record.id == r.id
        {
            return Ok((outcome, ci));
        }
        let deployment = match inner.store.deployment(tenant, &slug).await? {
            Some(d) => d,
            None => {
                let d = flowgate_store::Deployment {
                    tenant_id: tenant.to_owned(),
                    integration: slug.clone(),
                    config: "{}".into(),
                    deployed: true,
                    deployed_version: None,
                    updated_at: now,
                };
                inner.store.put_deployment(&d).await?;
                d
            }
        };
        let ci = deploy::build(outcome.record().clone(), Some(&deployment), &inner.sealer, &inner.settings.public_url)
            .map_err(ApplyError::Invalid)?;
        let ci = Arc::new(ci);
        inner.registry.install(ci.clone());
        self.announce_integration(tenant, &slug).await;
        if ci.live() && deployment.deployed_version != Some(ci.record.id) {
            let reason = if deployment.deployed_version.is_some() { "upgrade" } else { "deploy" };
            self.run_lifecycle(&ci, "deploy", reason, deployment).await?;
        }
        Ok((outcome, ci))
    }

    /// Deletes an integration: its webhooks stop at once, its `undeploy` flows run (when it
    /// was live); its history stays.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn delete(&self, tenant: &str, slug: &str) -> Result<bool, flowgate_store::Error> {
        if let Some(ci) = self.integration(tenant, slug).await?
            && ci.live()
            && let Some(d) = self.inner.store.deployment(tenant, slug).await?
        {
            self.run_lifecycle(&ci, "undeploy", "delete", d).await?;
        }
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
        Ok(self.inner.build(record).await.ok().map(|ci| {
            let ci = Arc::new(ci);
            self.inner.registry.install(ci.clone());
            ci
        }))
    }

    /// Switches a flow on or off, on every node, at once: a switched-off flow's webhook
    /// answers 404, its e-mail address refuses mail, its schedule or poll stops. Switching a
    /// schedule back on does not run the slots it missed while it was off.
    ///
    /// # Errors
    /// No such integration or flow, or the store.
    pub async fn set_active(
        &self,
        tenant: &str,
        integration: &str,
        flow: &str,
        active: bool,
    ) -> Result<(), flowgate_store::Error> {
        let inner = &self.inner;
        let ci = self.integration(tenant, integration).await?.ok_or(flowgate_store::Error::NotFound)?;
        let f = ci.flows.get(flow).ok_or(flowgate_store::Error::NotFound)?;
        let now = inner.clock.now_ms();
        if active
            && !inner.registry.is_active(f)
            && let Some(schedule) = f.trigger.schedule()
        {
            let stored = inner.store.trigger_state(tenant, integration, flow).await?;
            let mut state = stored
                .and_then(|s| serde_json::from_str::<Value>(&s.state).ok())
                .unwrap_or_else(|| serde_json::json!({}));
            state["lastSlot"] = serde_json::json!(schedule.latest_at_or_before(now).unwrap_or(now));
            let row = triggers::state_row(f, &state, now);
            inner
                .committer
                .commit(WriteBatch { states: vec![row], ..WriteBatch::default() })
                .await
                .map_err(|e| flowgate_store::Error::Config(e.to_string()))?;
        }
        inner.store.set_flow_active(tenant, integration, flow, active, now).await?;
        inner.registry.set_switch(tenant, integration, flow, active);
        inner.trigger_wake.notify_one();
        self.announce_integration(tenant, integration).await;
        Ok(())
    }

    /// Whether a flow runs (its switch, else its document's `active`).
    pub fn is_active(&self, flow: &CompiledFlow) -> bool {
        self.inner.registry.is_active(flow)
    }

    /// What a schedule or poll flow keeps between firings (`lastSlot`, a poll's `cursor`, …),
    /// without the remembered item ids (only their count, as `remembered`).
    ///
    /// # Errors
    /// The store.
    pub async fn trigger_state(
        &self,
        tenant: &str,
        integration: &str,
        flow: &str,
    ) -> Result<Option<Value>, flowgate_store::Error> {
        let Some(row) = self.inner.store.trigger_state(tenant, integration, flow).await? else { return Ok(None) };
        let mut v: Value = serde_json::from_str(&row.state).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            let remembered = o.remove("seen").and_then(|s| s.as_array().map(Vec::len)).unwrap_or(0);
            o.insert("remembered".into(), remembered.into());
            if let Some(t) = o.get("lastSlot").and_then(Value::as_i64) {
                o.insert("lastSlot".into(), clock::rfc3339(t).into());
            }
            o.insert("updatedAt".into(), clock::rfc3339(row.updated_at).into());
        }
        Ok(Some(v))
    }

    /// Forgets a flow's trigger state: a poll starts over as on its first run (`firstRun`
    /// decides whether what is there now runs); a schedule counts from now.
    ///
    /// # Errors
    /// The store.
    pub async fn reset_trigger_state(
        &self,
        tenant: &str,
        integration: &str,
        flow: &str,
    ) -> Result<bool, flowgate_store::Error> {
        let deleted = self.inner.store.delete_trigger_state(tenant, integration, flow).await?;
        self.inner.registry.touch();
        self.inner.trigger_wake.notify_one();
        self.announce_integration(tenant, integration).await;
        Ok(deleted)
    }

    /// Makes the scheduler look at the clock now (tests that move a manual clock).
    pub fn wake_triggers(&self) {
        self.inner.trigger_wake.notify_one();
    }

    /// A delivery with its attempts (never its request: it holds credentials).
    ///
    /// # Errors
    /// The store.
    pub async fn delivery_view(&self, tenant: &str, id: &str) -> Result<Option<Value>, flowgate_store::Error> {
        let Some(d) = self.inner.store.delivery(tenant, id).await? else { return Ok(None) };
        let attempts = self.inner.store.delivery_attempts(id).await?;
        Ok(Some(deliveries::present(&d, &attempts)))
    }

    /// An execution's deliveries with their attempts.
    ///
    /// # Errors
    /// The store.
    pub async fn deliveries_of(&self, execution: &str) -> Result<Vec<Value>, flowgate_store::Error> {
        let mut out = Vec::new();
        for d in self.inner.store.deliveries_of(execution).await? {
            let attempts = self.inner.store.delivery_attempts(&d.id).await?;
            out.push(deliveries::present(&d, &attempts));
        }
        Ok(out)
    }

    /// Sends a delivered or failed delivery again, with the same message id.
    ///
    /// # Errors
    /// Not found, still pending, or the store.
    pub async fn resend(&self, tenant: &str, id: &str) -> Result<Value, flowgate_store::Error> {
        let d = self.inner.store.resend_delivery(tenant, id, self.inner.clock.now_ms()).await?;
        self.inner.delivery_wake.notify_one();
        let attempts = self.inner.store.delivery_attempts(id).await?;
        Ok(deliveries::present(&d, &attempts))
    }

    /// Reserves `bytes` of the memory budget for an event being received, waiting at most
    /// a couple of seconds; `None`: no room (answer 503). Grow it with [`Engine::grow`].
    pub async fn reserve(&self, bytes: usize) -> Option<budget::Reservation> {
        self.inner.memory.reserve(bytes, submit::BUDGET_WAIT).await
    }

    /// Adds `bytes` to a reservation as more of a body arrives; false: no room.
    pub async fn grow(&self, r: &budget::Reservation, bytes: usize) -> bool {
        self.inner.memory.grow(r, bytes, submit::BUDGET_WAIT).await
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

/// Explicit inbound addresses shaped like another tenant's derived ones
/// (`<flow>.<integration>.<tenant>@<domain>`) are refused: the derived addresses of every
/// tenant, present and future, are theirs alone (issue 13).
fn foreign_addresses(draft: &Draft, tenant: &str, domain: &str) -> Result<(), Vec<Diagnostic>> {
    let mut problems = Vec::new();
    for (i, f) in draft.definition.flows.iter().enumerate() {
        let Some(address) =
            draft.emails().into_iter().find(|e| e.flow == f.flow).map(|e| e.address.to_ascii_lowercase())
        else {
            continue;
        };
        let Some((local, host)) = address.rsplit_once('@') else { continue };
        let parts: Vec<&str> = local.split('.').collect();
        let derived_shape = parts.len() == 3 && parts.iter().all(|p| flowgate_model::is_slug(p));
        if host.eq_ignore_ascii_case(domain) && derived_shape && parts[2] != tenant {
            problems.push(Diagnostic {
                path: format!("flows[{i}].trigger.email.address"),
                line: None,
                column: None,
                message: format!(
                    "`{address}` has the shape of tenant `{}`'s own addresses (<flow>.<integration>.<tenant>@{domain}); \
                     choose another address",
                    parts[2]
                ),
            });
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// Facts about a stored version, for listings.
pub fn version_summary(r: &VersionRecord) -> Value {
    serde_json::json!({ "id": r.id, "version": r.version, "hash": r.hash, "createdAt": clock::rfc3339(r.created_at) })
}
