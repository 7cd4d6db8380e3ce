//! Finding work: the claim loop and lease renewal.
//!
//! Most executions never pass through here: ingress inserts them already leased to this node
//! and hands them straight to a worker. The claim loop picks up the rest — executions queued
//! while every worker was busy, retries whose backoff is over, executions whose lease
//! expired (their node died), and everything left running by a crash. It sleeps until it is
//! woken (new backlog, a freed worker while backlog exists) or until the next due time,
//! with a slow fallback poll; it never spins.

use crate::Inner;
use crate::executor::{self, Job};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// Most executions claimed in one transaction.
const CLAIM_BATCH: usize = 64;

pub(crate) async fn claim_loop(inner: Arc<Inner>) {
    let mut next = Instant::now();
    loop {
        tokio::select! {
            _ = inner.stop_claims.cancelled() => return,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep_until(next) => {}
        }
        loop {
            // Take the permits first: ingress competes for them.
            let mut permits: Vec<_> =
                (0..CLAIM_BATCH).map_while(|_| inner.permits.clone().try_acquire_owned().ok()).collect();
            let free = permits.len();
            if free == 0 || inner.stop_claims.is_cancelled() {
                break;
            }
            inner.backlog.store(false, Ordering::Relaxed);
            let now = inner.clock.now_ms();
            let until = now + inner.settings.lease.as_millis() as i64;
            let claimed = match inner.store.claim(&inner.settings.node_id, now, until, free).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "Claim failed; retrying shortly.");
                    inner.backlog.store(true, Ordering::Relaxed);
                    break;
                }
            };
            let full = claimed.len() == free;
            for c in claimed {
                let permit = permits.pop().expect("a permit per claimed execution");
                let flow = match inner.flow_for(c.version_id, &c.flow).await {
                    Some(f) => f,
                    None => {
                        tracing::error!(execution_id = %c.id, flow = %c.flow, version_id = c.version_id, "Claimed an execution whose flow cannot be loaded.");
                        inner.fail_unrunnable(&c.id, "the execution's flow version cannot be loaded").await;
                        continue;
                    }
                };
                let trigger = serde_json::from_str(&c.trigger).unwrap_or(serde_json::Value::Null);
                let job = Job {
                    id: c.id,
                    flow,
                    trigger: Arc::new(trigger),
                    trigger_kind: c.trigger_kind,
                    round: c.attempt,
                    created_at: c.created_at,
                    resumed: true,
                    permit,
                };
                inner.tracker.spawn(executor::run(inner.clone(), job));
            }
            if !full {
                break;
            }
            inner.backlog.store(true, Ordering::Relaxed);
        }
        next = Instant::now() + inner.settings.poll_interval;
        if let Ok(Some(due)) = inner.store.next_due().await {
            let wait = (due - inner.clock.now_ms()).max(0) as u64;
            next = next.min(Instant::now() + Duration::from_millis(wait));
        }
    }
}

/// How often the leader looks for executions whose node died (and, when not leading, whether
/// the leadership is free).
const LEADER_EVERY: Duration = Duration::from_secs(2);

/// Leader-only work, coordinated through the store: the one node that holds the leadership
/// puts executions whose lease expired back in the queue. Leadership moves to another node
/// when the leader dies.
pub(crate) async fn leader_loop(inner: Arc<Inner>) {
    loop {
        match inner.store.lead().await {
            Ok(true) => match inner.store.reap_expired(inner.clock.now_ms()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(executions = n, "Requeued executions whose node stopped renewing its lease.");
                    inner.backlog.store(true, Ordering::Relaxed);
                    inner.wake.notify_one();
                }
                Err(e) => tracing::warn!(error = %e, "Reaping expired leases failed; will retry."),
            },
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "Leader election failed; will retry."),
        }
        tokio::select! {
            _ = inner.hard_stop.cancelled() => return,
            _ = tokio::time::sleep(LEADER_EVERY) => {}
        }
    }
}

pub(crate) async fn renew_loop(inner: Arc<Inner>) {
    let every = inner.settings.lease / 3;
    loop {
        tokio::select! {
            _ = inner.hard_stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let until = inner.clock.now_ms() + inner.settings.lease.as_millis() as i64;
        if let Err(e) = inner.store.renew_leases(&inner.settings.node_id, until).await {
            tracing::warn!(error = %e, "Lease renewal failed; will retry.");
        }
    }
}
