//! Starting and stopping a node: the shared state is built, stored integrations loaded, the
//! committer, dispatchers, triggers, deliveries and housekeeping spawned; a graceful stop
//! lets running executions finish for a while, then hands the rest back to the queue.

use crate::*;

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
            dry_evaluator: Evaluator::new(settings.expression_budget, 1),
            http: flowgate_steps::util::http_client_with(&settings.outbound),
            permits: Arc::new(Semaphore::new(if settings.workers { settings.max_concurrency } else { 0 })),
            dry_permits: Arc::new(Semaphore::new(crate::dry_runs::slots(&settings))),
            store,
            settings,
            clock,
            registry,
            committer,
            waiters: waiters::Waiters::default(),
            wake: Notify::new(),
            backlog: AtomicBool::new(true),
            running: Default::default(),
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
            tokens: Default::default(),
            dry_runs: Default::default(),
        });
        if !inner.store.shared() {
            // This process owns the store: leases left by a crash belong to nobody alive.
            let n = inner.store.expire_all_leases().await?;
            if n > 0 {
                tracing::info!(executions = n, "Resuming executions interrupted by the last stop.");
            }
        }
        crate::dry_runs::tidy(&inner, true).await;
        let built = build_all(&inner).await?;
        inner.registry.install_all(built);
        if inner.settings.workers {
            tokio::spawn(dispatch::claim_loop(inner.clone()));
            tokio::spawn(dispatch::renew_loop(inner.clone()));
        }
        inner.log_sinks.reload(inner.store.all_log_sources().await?, &inner.sealer, &inner.settings.outbound).await;
        match inner.store.flow_switches().await {
            Ok(all) => inner.registry.set_switches(all.iter().map(|s| (s.flow_key().into(), s.active))),
            Err(e) => return Err(e),
        }
        if inner.settings.leader {
            tokio::spawn(dispatch::leader_loop(inner.clone()));
            tokio::spawn(triggers::scheduler::scheduler_loop(inner.clone()));
            tokio::spawn(triggers::brokers::consumers_loop(inner.clone()));
            tokio::spawn(deliveries::delivery_loop(inner.clone()));
        }
        tokio::spawn(dispatch::backlog_loop(inner.clone()));
        if let Some(events) = inner.store.subscribe() {
            tokio::spawn(events::listen(inner.clone(), events));
        }
        Ok(Engine { inner })
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

    /// Executions running on this node now.
    pub fn running(&self) -> usize {
        self.inner.running.len()
    }
}

/// Compiles every stored integration for its deployment: the deployments read in one query,
/// the compiling shared among the cores (a node may serve thousands of integrations, and it
/// answers nothing until they are compiled).
async fn build_all(inner: &Arc<Inner>) -> Result<Vec<Arc<CompiledIntegration>>, flowgate_store::Error> {
    let records = inner.store.all_integrations().await?;
    let mut deployments: HashMap<(String, String), flowgate_store::Deployment> = HashMap::new();
    for d in inner.store.deployments().await? {
        deployments.insert((d.tenant_id.clone(), d.integration.clone()), d);
    }
    let inner = inner.clone();
    let built = tokio::task::spawn_blocking(move || {
        // Dealt round-robin: the order they are installed in does not matter.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let mut parts: Vec<Vec<flowgate_store::VersionRecord>> = (0..cores).map(|_| Vec::new()).collect();
        for (i, record) in records.into_iter().enumerate() {
            parts[i % cores].push(record);
        }
        std::thread::scope(|scope| {
            let workers: Vec<_> = parts
                .into_iter()
                .map(|part| {
                    let (inner, deployments) = (&inner, &deployments);
                    scope.spawn(move || {
                        let mut built = Vec::with_capacity(part.len());
                        for record in part {
                            let (tenant, slug) = (record.tenant_id.clone(), record.slug.clone());
                            let deployment = deployments.get(&(tenant.clone(), slug.clone()));
                            match deploy::build(record, deployment, &inner.sealer, &inner.settings.public_url) {
                                Ok(ci) => built.push(Arc::new(ci)),
                                Err(diags) => tracing::error!(
                                    tenant,
                                    integration = slug,
                                    problems = ?diags,
                                    "A stored integration no longer compiles; it is not served."
                                ),
                            }
                        }
                        built
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().expect("a compiling thread panicked")).collect::<Vec<_>>()
        })
    })
    .await
    .expect("compiling the stored integrations");
    Ok(built)
}
