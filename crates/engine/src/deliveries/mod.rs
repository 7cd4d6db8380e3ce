//! Outbound deliveries: webhooks (the `webhook` step, step hooks) and e-mails (the `email`
//! step, failure notifications), each a row that outlives the execution that made it.
//!
//! A delivery is inserted with the journal entries of the step that made it (same
//! transaction), under a deterministic id (`<execution>:<step>:<round>[:hook]`), so a resumed
//! step never makes a second one. The leader's delivery loop claims due rows (moving their
//! next attempt a lease ahead, so a node dying mid-send only delays them), makes the attempt,
//! records it (status, latency, an excerpt of the answer) and schedules the next one from the
//! delivery's schedule (±20 % jitter, `Retry-After` honoured) until it succeeds, the schedule
//! is used up, or the receiver answers `410 Gone`. The message id (`webhook-id`,
//! `Message-ID`) is fixed at creation, so receivers can deduplicate retries.
//!
//! An execution that waits for a delivery (`wait: true`) parks in `waiting` — holding no
//! worker — and is queued again by the attempt that ends the delivery.

//!
//! Layout: `sent` (what an attempt gave, ids and sealing — a leaf), `webhook` and `email`
//! (each kind's sender: email also sends the failure notifications and their digest, and
//! keeps each tenant's SMTP server); this module claims, attempts and reschedules.

pub(crate) mod email;
mod sent;
mod webhook;

pub(crate) use flowgate_steps::webhook::check_request;
pub(crate) use sent::{Sent, aad, message_id};

use crate::Inner;
use flowgate_store::{AttemptOutcome, DeliveryAttempt, DeliveryRecord, NewDelivery, StoreEvent};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How far a claimed delivery's next attempt moves, in case its node dies mid-send.
const LEASE_MS: i64 = 120_000;
/// Deliveries attempted at once.
const PARALLEL: usize = 32;

/// A delivery row for `request` (sealed here).
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_delivery(
    inner: &Inner,
    flow: &crate::CompiledFlow,
    id: String,
    execution: Option<&str>,
    step: Option<&str>,
    kind: &str,
    name: &str,
    request: &Value,
    delays: &[Duration],
) -> NewDelivery {
    let now = inner.clock.now_ms();
    let schedule: Vec<u64> = delays.iter().map(|d| d.as_millis() as u64).collect();
    let first = schedule.first().copied().unwrap_or(0) as i64;
    NewDelivery {
        message_id: message_id(&id),
        request: inner.sealer.seal_str(&request.to_string(), &aad(&id)),
        id,
        tenant_id: flow.tenant.clone(),
        integration: flow.integration.clone(),
        flow: flow.slug.clone(),
        execution_id: execution.map(str::to_owned),
        step_id: step.map(str::to_owned),
        kind: kind.to_owned(),
        name: name.to_owned(),
        schedule: json!(schedule).to_string(),
        next_at: now + first,
        created_at: now,
    }
}

/// The leader's loop: attempts due deliveries, a bounded number at once.
pub(crate) async fn delivery_loop(inner: Arc<Inner>) {
    let slots = Arc::new(Semaphore::new(PARALLEL));
    loop {
        if inner.stopping.load(Ordering::Relaxed) {
            return;
        }
        if inner.leading.load(Ordering::Acquire) {
            let free = slots.available_permits() as u32;
            if free > 0 {
                let now = inner.clock.now_ms();
                match inner.store.due_deliveries(now, LEASE_MS, free).await {
                    Ok(due) => {
                        let busy = due.len() as u32 == free;
                        for d in due {
                            let Ok(permit) = slots.clone().acquire_owned().await else { return };
                            let inner = inner.clone();
                            tokio::spawn(async move {
                                let _one_at_a_time =
                                    if d.kind == "notification" { Some(inner.notify_gate.lock().await) } else { None };
                                attempt(&inner, d).await;
                                drop(permit);
                                inner.delivery_wake.notify_one();
                            });
                        }
                        if busy {
                            continue;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "Cannot read due deliveries; will retry."),
                }
            }
        }
        tokio::select! {
            _ = inner.hard_stop.cancelled() => return,
            _ = inner.delivery_wake.notified() => {}
            _ = tokio::time::sleep(inner.settings.trigger_tick) => {}
        }
    }
}

async fn attempt(inner: &Arc<Inner>, d: DeliveryRecord) {
    let started = Instant::now();
    let request = inner
        .sealer
        .open_str(&d.request, &aad(&d.id))
        .map_err(|e| format!("cannot open the delivery's request: {e}"))
        .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()));
    let sent = match request {
        Err(e) => Sent {
            status: None,
            latency_ms: 0,
            excerpt: None,
            error: Some(e),
            retry_after: None,
            give_up: true,
            ok: false,
            response: None,
        },
        Ok(req) => match d.kind.as_str() {
            "webhook" => webhook::send_webhook(inner, &d, &req).await,
            "email" | "notification" => email::send(inner, &d, &req).await,
            // A `wait` step's row comes due at its timeout: nobody called.
            crate::waits::KIND => Sent {
                status: None,
                latency_ms: 0,
                excerpt: None,
                error: Some("no call to the resume URL within the timeout".into()),
                retry_after: None,
                give_up: true,
                ok: false,
                response: None,
            },
            other => Sent {
                status: None,
                latency_ms: 0,
                excerpt: None,
                error: Some(format!("unknown delivery kind `{other}`")),
                retry_after: None,
                give_up: true,
                ok: false,
                response: None,
            },
        },
    };
    let number = d.attempts + 1;
    let schedule: Vec<u64> = serde_json::from_str(&d.schedule).unwrap_or_default();
    let now = inner.clock.now_ms();
    let (status, next_at) = if sent.ok && sent.is_digested() {
        // Folded into the window's digest: no mail went out for it (the digest's own
        // delivery says when one does).
        ("digested", now)
    } else if sent.ok {
        ("delivered", now)
    } else if sent.give_up || number as usize >= schedule.len().max(1) {
        ("failed", now)
    } else {
        let base = schedule[number as usize] as f64;
        let jitter = 1.0 + (rand::random::<f64>() * 0.4 - 0.2);
        let delay = (base * jitter) as i64;
        let delay = sent.retry_after.map_or(delay, |r| delay.max(r.as_millis() as i64));
        ("pending", now + delay)
    };
    let outcome = AttemptOutcome {
        attempt: DeliveryAttempt {
            delivery_id: d.id.clone(),
            attempt: number,
            at: now,
            status_code: sent.status.map(i64::from),
            latency_ms: sent.latency_ms.max(started.elapsed().as_millis() as i64),
            excerpt: sent.excerpt,
            error: sent.error.clone(),
        },
        status: status.to_owned(),
        next_at,
        response: sent.response.map(|r| r.to_string()),
    };
    metrics::counter!("flowgate_delivery_attempts_total", "kind" => d.kind.clone(), "outcome" => status).increment(1);
    match inner.store.finish_attempt(&d.id, &outcome, now).await {
        Ok(Some(execution)) => {
            tracing::debug!(execution_id = %execution, delivery = %d.id, "A waiting execution goes on.");
            inner.backlog.store(true, Ordering::Relaxed);
            inner.wake.notify_one();
            let _ = inner.store.notify(&[StoreEvent::Work]).await;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, delivery = %d.id, "Cannot record a delivery attempt; it will be tried again.")
        }
    }
    if status == "failed" {
        tracing::warn!(delivery = %d.id, name = %d.name, error = ?sent.error, "A delivery failed for good.");
    }
}

/// A delivery as the API shows it (never its request: it holds credentials).
pub fn present(d: &DeliveryRecord, attempts: &[DeliveryAttempt]) -> Value {
    let t = crate::clock::rfc3339;
    json!({
        "id": d.id,
        "kind": d.kind,
        "name": d.name,
        "executionId": d.execution_id,
        "stepId": d.step_id,
        "messageId": d.message_id,
        "status": d.status,
        "attempts": d.attempts,
        "nextAttemptAt": (d.status == "pending").then(|| t(d.next_at)),
        "lastStatus": d.last_status,
        "lastError": d.last_error,
        "response": d.response.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()),
        "createdAt": t(d.created_at),
        "updatedAt": t(d.updated_at),
        "history": attempts.iter().map(|a| json!({
            "attempt": a.attempt,
            "at": t(a.at),
            "status": a.status_code,
            "latencyMs": a.latency_ms,
            "excerpt": a.excerpt,
            "error": a.error,
        })).collect::<Vec<_>>(),
    })
}
