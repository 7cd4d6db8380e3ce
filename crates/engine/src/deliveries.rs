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

use crate::Inner;
use base64::Engine as _;
use flowgate_store::{AttemptOutcome, DeliveryAttempt, DeliveryRecord, NewDelivery, StoreEvent};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How far a claimed delivery's next attempt moves, in case its node dies mid-send.
const LEASE_MS: i64 = 120_000;
/// Deliveries attempted at once.
const PARALLEL: usize = 32;
/// Longest one webhook attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an answer is kept with an attempt.
const EXCERPT_BYTES: usize = 1024;

/// The sealing context of a delivery's request.
pub(crate) fn aad(id: &str) -> String {
    format!("delivery/{id}")
}

/// The stable message id of a delivery (`webhook-id`).
pub(crate) fn message_id(id: &str) -> String {
    format!("msg_{}", &hex::encode(Sha256::digest(id.as_bytes()))[..26])
}

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

/// What one attempt gave.
pub(crate) struct Sent {
    pub status: Option<u16>,
    pub latency_ms: i64,
    pub excerpt: Option<String>,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
    /// Stop retrying (410 Gone, a request that can never be made).
    pub give_up: bool,
    pub ok: bool,
    pub response: Option<Value>,
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
            "webhook" => send_webhook(inner, &d, &req).await,
            "email" | "notification" => crate::mail::send(inner, &d, &req).await,
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

/// POSTs a webhook: JSON body, the stable `webhook-id`, the auth the request names.
async fn send_webhook(inner: &Inner, d: &DeliveryRecord, req: &Value) -> Sent {
    let fail = |error: String, give_up: bool| Sent {
        status: None,
        latency_ms: 0,
        excerpt: None,
        error: Some(error),
        retry_after: None,
        give_up,
        ok: false,
        response: None,
    };
    let url = match req["url"].as_str().and_then(|u| reqwest::Url::parse(u).ok()) {
        Some(u) if u.scheme() == "http" || u.scheme() == "https" => u,
        _ => return fail("the endpoint is not an http(s) URL".into(), true),
    };
    if let Err(m) = inner.settings.outbound.check_url(&url) {
        return fail(m, true);
    }
    let mut body = req["body"].clone();
    let auth = &req["auth"];
    let mut headers: Vec<(String, String)> = Vec::new();
    match auth["kind"].as_str().unwrap_or("none") {
        "clientSecret" => {
            let secret = auth["secret"].as_str().unwrap_or_default().to_owned();
            if auth["header"] != false {
                headers.push(("X-Client-Secret".into(), secret.clone()));
            }
            if let Some(field) = auth["field"].as_str() {
                match body.as_object_mut() {
                    Some(o) => {
                        o.insert(field.to_owned(), Value::String(secret));
                    }
                    None => body = json!({ "data": body, field: secret }),
                }
            }
        }
        "basic" => {
            let creds =
                format!("{}:{}", auth["username"].as_str().unwrap_or(""), auth["password"].as_str().unwrap_or(""));
            headers.push((
                "Authorization".into(),
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(creds)),
            ));
        }
        _ => {}
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let timestamp = (inner.clock.now_ms() / 1000).to_string();
    headers.push(("webhook-id".into(), d.message_id.clone()));
    headers.push(("webhook-timestamp".into(), timestamp.clone()));
    if auth["kind"] == "standardWebhooks" {
        let Some(key) = auth["secret"].as_str().and_then(flowgate_model::outbound::whsec_key) else {
            return fail("the signing secret is not a whsec_… secret".into(), true);
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(d.message_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(&bytes);
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        headers.push(("webhook-signature".into(), format!("v1,{sig}")));
    }
    let mut rb = inner
        .http
        .post(url)
        .timeout(ATTEMPT_TIMEOUT)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(bytes);
    if let Value::Object(extra) = &req["headers"] {
        for (k, v) in extra {
            if !v.is_null() {
                rb = rb.header(k.as_str(), flowgate_expr::to_text(v));
            }
        }
    }
    for (k, v) in headers {
        rb = rb.header(k, v);
    }
    let started = Instant::now();
    match rb.send().await {
        Err(e) => {
            let latency_ms = started.elapsed().as_millis() as i64;
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            Sent { latency_ms, ..fail(format!("{what}: {}", source_chain(&e)), false) }
        }
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = resp.bytes().await.unwrap_or_default();
            let latency_ms = started.elapsed().as_millis() as i64;
            let excerpt = String::from_utf8_lossy(&text[..text.len().min(EXCERPT_BYTES)]).into_owned();
            let ok = (200..300).contains(&status);
            let body: Value = serde_json::from_slice(&text).unwrap_or_else(|_| Value::String(excerpt.clone()));
            Sent {
                status: Some(status),
                latency_ms,
                excerpt: Some(excerpt),
                error: (!ok).then(|| format!("the endpoint answered {status}")),
                retry_after,
                give_up: status == 410,
                ok,
                response: ok.then(|| json!({ "status": status, "body": body })),
            }
        }
    }
}

impl Sent {
    /// A delivered attempt.
    pub(crate) fn delivered(started: Instant, response: Value) -> Sent {
        Sent {
            status: None,
            latency_ms: started.elapsed().as_millis() as i64,
            excerpt: None,
            error: None,
            retry_after: None,
            give_up: false,
            ok: true,
            response: Some(response),
        }
    }

    /// An attempt that could not be made.
    /// Whether this notification was folded into a digest rather than sent.
    pub(crate) fn is_digested(&self) -> bool {
        self.response.as_ref().is_some_and(|r| r.get("digestedInto").is_some())
    }

    pub(crate) fn failed(error: impl Into<String>, give_up: bool) -> Sent {
        Sent {
            status: None,
            latency_ms: 0,
            excerpt: None,
            error: Some(error.into()),
            retry_after: None,
            give_up,
            ok: false,
            response: None,
        }
    }
}

fn source_chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        parts.push(inner.to_string());
        src = inner.source();
    }
    if parts.is_empty() { "the request failed".into() } else { parts.join(": ") }
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

/// The JSON a webhook's template gives, with its credential fields checked.
pub(crate) fn check_request(req: &Value) -> Result<(), String> {
    if req["url"].as_str().is_none_or(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
        return Err(format!("the endpoint `{}` is not an http(s) URL", flowgate_expr::to_text(&req["url"])));
    }
    let auth = &req["auth"];
    match auth["kind"].as_str() {
        Some("clientSecret") if auth["secret"].as_str().is_none_or(|s| s.is_empty() || s.chars().count() > 250) => {
            Err("the client secret must be 1–250 characters (is its config value set?)".into())
        }
        Some("basic")
            if auth["username"].as_str().is_none_or(|s| s.chars().count() > 100)
                || auth["password"].as_str().is_none_or(|s| s.chars().count() > 100) =>
        {
            Err("basic credentials must be at most 100 characters each".into())
        }
        Some("standardWebhooks") if auth["secret"].as_str().and_then(flowgate_model::outbound::whsec_key).is_none() => {
            Err("the signing secret must be a whsec_… secret (is its config value set?)".into())
        }
        _ => Ok(()),
    }
}
