//! What other nodes tell this one through the store (PostgreSQL's LISTEN/NOTIFY): there is
//! work to claim, an execution this node's caller waits for ended or answered elsewhere, an
//! execution this node runs was cancelled, an integration changed.

use crate::Inner;
use flowgate_store::StoreEvent;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::broadcast;

pub(crate) async fn listen(inner: Arc<Inner>, mut events: broadcast::Receiver<StoreEvent>) {
    loop {
        let event = tokio::select! {
            _ = inner.hard_stop.cancelled() => return,
            e = events.recv() => e,
        };
        match event {
            Ok(e) => handle(&inner, e).await,
            // Too far behind: some events are gone.
            Err(broadcast::error::RecvError::Lagged(_)) => handle(&inner, StoreEvent::Resync).await,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn handle(inner: &Arc<Inner>, event: StoreEvent) {
    match event {
        StoreEvent::Work => {
            inner.backlog.store(true, Ordering::Relaxed);
            inner.wake.notify_one();
        }
        StoreEvent::Finished { id } | StoreEvent::Responded { id } => answer_from_store(inner, &id).await,
        StoreEvent::Cancel { id, attempt } => {
            inner.running.cancel(&id, attempt);
        }
        StoreEvent::Integration { tenant, slug } => {
            reload_switches(inner).await;
            reload(inner, &tenant, &slug).await;
            // Its trigger state may have changed too (a reset): the scheduler re-reads it.
            inner.registry.touch();
            inner.trigger_wake.notify_one();
        }
        StoreEvent::LogSources { .. } => {
            if let Ok(all) = inner.store.all_log_sources().await {
                inner.log_sinks.reload(all, &inner.sealer, &inner.settings.outbound).await;
            }
        }
        StoreEvent::Resync => {
            if let Ok(all) = inner.store.all_log_sources().await {
                inner.log_sinks.reload(all, &inner.sealer, &inner.settings.outbound).await;
            }
            inner.backlog.store(true, Ordering::Relaxed);
            inner.wake.notify_one();
            reload_switches(inner).await;
            match inner.store.all_integrations().await {
                Ok(records) => {
                    for r in records {
                        reload(inner, &r.tenant_id, &r.slug).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Resync failed."),
            }
            inner.registry.touch();
            inner.trigger_wake.notify_one();
        }
    }
}

/// A caller here waits for an execution another node ran: answer it from the stored row.
async fn answer_from_store(inner: &Arc<Inner>, id: &str) {
    if !inner.waiters.is_waiting(id) {
        return;
    }
    let row = match inner.store.execution(None, id).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, execution_id = id, "Cannot read an execution a caller waits for.");
            return;
        }
    };
    if let Some(outcome) = inner.stored_outcome(&row).await {
        inner.waiters.answer(id, outcome);
    }
}

/// Re-reads which flows are switched on or off through the API.
async fn reload_switches(inner: &Arc<Inner>) {
    match inner.store.flow_switches().await {
        Ok(all) => inner.registry.set_switches(all.iter().map(|s| (s.flow_key().into(), s.active))),
        Err(e) => tracing::warn!(error = %e, "Cannot reload the flows' switches."),
    }
}

/// Re-reads an integration's current version (or its removal) into the registry.
async fn reload(inner: &Arc<Inner>, tenant: &str, slug: &str) {
    match inner.store.integration(tenant, slug).await {
        Ok(Some(record)) => {
            // Rebuilt even when the version is the same: its deployment (config values, deployed
            // or not) may be what changed.
            match inner.build(record).await {
                Ok(ci) => inner.registry.install(Arc::new(ci)),
                Err(problems) => {
                    tracing::error!(
                        tenant,
                        integration = slug,
                        ?problems,
                        "A changed integration does not compile here."
                    )
                }
            }
        }
        Ok(None) => inner.registry.remove(tenant, slug),
        Err(e) => tracing::warn!(error = %e, tenant, integration = slug, "Cannot reload a changed integration."),
    }
}
