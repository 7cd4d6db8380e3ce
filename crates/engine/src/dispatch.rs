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

/// Executions resumed after one crash run at most this many at a time on a node.
const SUSPECTS_AT_ONCE: usize = 16;
/// How often the suspect lanes are looked at while the main lane keeps every worker busy.
const SUSPECTS_EVERY: Duration = Duration::from_secs(1);

/// A lane of the queue: executions whose `crashes` count is in `crashes`, at most `cap`
/// running at once on this node (`None`: as many as there are workers).
pub(crate) struct Lane {
    crashes: std::ops::Range<i64>,
    cap: Option<usize>,
    /// Running now in this lane, on this node.
    pub(crate) running: std::sync::atomic::AtomicUsize,
}

/// The lanes for a crash limit (issue 12). Executions that were running when a node died are
/// suspects: one of them may be what killed it. They are resumed apart from fresh work, a
/// few at a time after one crash and alone after `limit - 1`, so a poison execution takes
/// few others down with it and reaches the limit alone (then the executor fails it).
pub(crate) fn lanes(limit: u32) -> Vec<Lane> {
    let lane = |crashes, cap| Lane { crashes, cap, running: Default::default() };
    let limit = i64::from(limit);
    if limit == 0 {
        return vec![lane(0..i64::MAX, None)];
    }
    let mut lanes = vec![lane(0..1, None)];
    if limit >= 3 {
        lanes.push(lane(1..limit - 1, Some(SUSPECTS_AT_ONCE)));
    }
    lanes.push(lane((limit - 1).max(1)..i64::MAX, Some(1)));
    lanes
}

pub(crate) async fn claim_loop(inner: Arc<Inner>) {
    let mut next = Instant::now();
    let mut suspects_seen = Instant::now() - SUSPECTS_EVERY;
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
            let mut full = false;
            for (i, lane) in inner.lanes.iter().enumerate() {
                let room = match lane.cap {
                    None => permits.len(),
                    Some(cap) => cap.saturating_sub(lane.running.load(Ordering::Acquire)).min(permits.len()),
                };
                if room == 0 {
                    continue;
                }
                if i > 0 {
                    // Suspects are rare: looked for when fresh work leaves room, or now and then.
                    if full && suspects_seen.elapsed() < SUSPECTS_EVERY {
                        break;
                    }
                    suspects_seen = Instant::now();
                }
                let now = inner.clock.now_ms();
                let until = now + inner.settings.lease.as_millis() as i64;
                // Tenants and flows holding their share of the workers wait in the queue; a claim
                // takes no more of one than its share has room for.
                let filter = flowgate_store::ClaimFilter::new(lane.crashes.clone(), inner.shares.room());
                let claimed = match inner.store.claim_in(&inner.settings.node_id, now, until, room, &filter).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, "Claim failed; retrying shortly.");
                        inner.backlog.store(true, Ordering::Relaxed);
                        break;
                    }
                };
                if i == 0 {
                    full = claimed.len() == room;
                }
                for c in claimed {
                    let permit = permits.pop().expect("a permit per claimed execution");
                    start_claimed(&inner, c, permit, i).await;
                }
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

/// Hands a claimed execution to a worker (or fails it when its flow is gone).
async fn start_claimed(
    inner: &Arc<Inner>,
    c: flowgate_store::Claimed,
    permit: tokio::sync::OwnedSemaphorePermit,
    lane: usize,
) {
    let flow = match inner.flow_for(c.version_id, &c.flow).await {
        Some(f) => f,
        None => {
            tracing::error!(execution_id = %c.id, flow = %c.flow, version_id = c.version_id, "Claimed an execution whose flow cannot be loaded.");
            inner.fail_unrunnable(&c.id, "the execution's flow version cannot be loaded").await;
            return;
        }
    };
    inner.lanes[lane].running.fetch_add(1, Ordering::AcqRel);
    let share =
        inner.shares.take(&c.tenant_id, flowgate_store::ShareRoom::flow_key(c.flow_key())).on_room(inner.room_waker());
    let job = Job {
        id: c.id,
        flow,
        trigger: Arc::new(serde_json::Value::Null),
        trigger_kind: c.trigger_kind,
        round: c.attempt,
        created_at: c.created_at,
        resumed: true,
        fresh: c.fresh,
        cancel_requested: c.cancel_requested,
        permit: Some(permit),
        mocks: None,
        crashes: c.crashes,
        lane: Some(lane),
        reservation: None,
        share: Some(share),
        stored_trigger: Some(c.trigger),
        traceparent: c.traceparent,
    };
    inner.tracker.spawn(executor::run(inner.clone(), job));
}

/// How often the leader looks for executions whose node died (and, when not leading, whether
/// the leadership is free).
const LEADER_EVERY: Duration = Duration::from_secs(2);

/// Leader-only work, coordinated through the store: the one node that holds the leadership
/// puts executions whose lease expired back in the queue. Leadership moves to another node
/// when the leader dies.
pub(crate) async fn leader_loop(inner: Arc<Inner>) {
    let every = inner.settings.housekeeping_every;
    let mut last_housekeeping = Instant::now() - every;
    loop {
        let leading = inner.store.lead().await;
        let was = inner.leading.swap(matches!(leading, Ok(true)), Ordering::AcqRel);
        if was != matches!(leading, Ok(true)) {
            inner.trigger_wake.notify_one();
        }
        match leading {
            Ok(true) => {
                match inner.store.reap_expired(inner.clock.now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(executions = n, "Requeued executions whose node stopped renewing its lease.");
                        inner.backlog.store(true, Ordering::Relaxed);
                        inner.wake.notify_one();
                    }
                    Err(e) => tracing::warn!(error = %e, "Reaping expired leases failed; will retry."),
                }
                if last_housekeeping.elapsed() >= every {
                    last_housekeeping = Instant::now();
                    housekeeping(&inner).await;
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "Leader election failed; will retry."),
        }
        tokio::select! {
            _ = inner.hard_stop.cancelled() => return,
            _ = tokio::time::sleep(LEADER_EVERY.min(every)) => {}
        }
    }
}

/// Rows deleted per statement: small batches keep the writer free for ingress between them.
const PRUNE_BATCH: u32 = 500;
/// Most rows one housekeeping pass deletes per scope before yielding until the next pass.
const PRUNE_PASS: u64 = 50_000;

/// Retention (per flow and global) and expired delivery identities, in small batches with
/// pauses between them so ingress is never blocked for long.
async fn housekeeping(inner: &Arc<Inner>) {
    use flowgate_store::PruneScope;
    let now = inner.clock.now_ms();
    let mut scopes: Vec<(PruneScope, Option<i64>, Option<u64>)> = Vec::new();
    for ci in inner.registry.current_integrations() {
        for f in ci.flows.values() {
            if let Some(r) = f.policy.retention {
                let scope = PruneScope::Flow {
                    tenant: f.tenant.clone(),
                    integration: f.integration.clone(),
                    flow: f.slug.clone(),
                };
                scopes.push((scope, r.age.map(|a| now - a.0.as_millis() as i64), r.count));
            }
        }
    }
    let s = &inner.settings;
    if s.retention_age.is_some() || s.retention_count.is_some() {
        scopes.push((PruneScope::All, s.retention_age.map(|a| now - a.as_millis() as i64), s.retention_count));
    }
    for (scope, older_than, keep) in scopes {
        let mut deleted = 0;
        while deleted < PRUNE_PASS {
            match inner.store.prune(&scope, older_than, keep, PRUNE_BATCH).await {
                Ok(0) => break,
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::warn!(error = %e, "Retention pass failed; will retry.");
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if deleted > 0 {
            tracing::info!(executions = deleted, "Deleted finished executions past their retention.");
        }
    }
    crate::dry_runs::tidy(inner, false).await;
    loop {
        match inner.store.purge_dedup(now, PRUNE_BATCH).await {
            Ok(n) if n == u64::from(PRUNE_BATCH) => tokio::time::sleep(Duration::from_millis(5)).await,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "Forgetting expired delivery identities failed; will retry.");
                break;
            }
        }
    }
}

/// Measures the queue for ingress backpressure (reading a count per event would cost more than
/// the event).
pub(crate) async fn backlog_loop(inner: Arc<Inner>) {
    loop {
        if let Ok(depth) = inner.store.queue_depth().await {
            inner.backlog_depth.store(depth.queued, Ordering::Relaxed);
            metrics::gauge!("flowgate_queue_depth", "status" => "queued").set(depth.queued as f64);
            metrics::gauge!("flowgate_queue_depth", "status" => "running").set(depth.running as f64);
        }
        tokio::select! {
            _ = inner.hard_stop.cancelled() => return,
            _ = tokio::time::sleep(inner.settings.backlog_every) => {}
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
        // Only what a worker here runs now: an execution this node holds but does not run
        // (its insert's commit failed in doubt, its worker gave up on the store) must expire
        // and be resumed, not be kept alive forever (issue 12).
        let ids = inner.running.ids();
        if let Err(e) = inner.store.renew_leases(&inner.settings.node_id, &ids, until).await {
            tracing::warn!(error = %e, "Lease renewal failed; will retry.");
        }
    }
}
