//! E-mail deliveries: the `email` step's messages and the flows' failure notifications,
//! sent by the delivery loop through the tenant's own SMTP server when it set one
//! (`PUT /v1/smtp`, sealed at rest) and otherwise the server's relay (`--smtp-relay`).
//!
//! Notifications are rate-limited per flow: at most [`NOTIFY_LIMIT`] individual messages per
//! [`NOTIFY_WINDOW`]; past that, a failure is folded into one digest for the window, sent when
//! the window ends ("12 more executions failed between … and …"). An outage of a busy flow
//! sends a handful of mails, not thousands.

use super::sent::{Sent, aad, message_id};
use crate::Inner;
use base64::Engine as _;
use flowgate_mailer::{Email, EmailAttachment};
use flowgate_store::{DeliveryRecord, ExecutionFilter, WriteBatch};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Delays before each attempt of a notification.
pub(crate) const NOTIFY_SCHEDULE: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_secs(30),
    Duration::from_secs(300),
    Duration::from_secs(1800),
    Duration::from_secs(7200),
    Duration::from_secs(18000),
];
/// Individual notifications of one flow per window before the rest go into a digest.
pub(crate) const NOTIFY_LIMIT: i64 = 5;
/// The notification window.
pub(crate) const NOTIFY_WINDOW: i64 = 3_600_000;

/// Sends one e-mail delivery.
pub(crate) async fn send(inner: &Inner, d: &DeliveryRecord, req: &Value) -> Sent {
    let mailer = match mailer_for(inner, &d.tenant_id).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Sent::failed(
                "no SMTP server is set for this tenant (PUT /v1/smtp) nor on this server (--smtp-relay)",
                false,
            );
        }
        Err(m) => return Sent::failed(m, false),
    };
    let email = match d.kind.as_str() {
        "notification" if req["digest"] == true => digest(inner, d, req).await,
        "notification" => match folded(inner, d, req).await {
            Some(sent) => return sent,
            None => notification(d, req),
        },
        _ => match email(d, req) {
            Ok(e) => e,
            Err(m) => return Sent::failed(m, true),
        },
    };
    let started = Instant::now();
    match mailer.send(&email).await {
        Ok(id) => Sent::delivered(started, json!({ "messageId": id })),
        Err(e) => {
            let mut sent = Sent::failed(e.message.clone(), !e.retryable);
            sent.status = e.code;
            sent.latency_ms = started.elapsed().as_millis() as i64;
            sent
        }
    }
}

/// The settings key of a tenant's SMTP server.
fn smtp_key(tenant: &str) -> String {
    format!("smtp/{tenant}")
}

/// The associated data a tenant's sealed SMTP settings are bound to.
pub(crate) fn smtp_aad(tenant: &str) -> String {
    format!("smtp/{tenant}")
}

/// The mailer of a tenant: its own SMTP server, else the server's relay. Its settings are
/// read on each send (mail is rare; a change on any node takes effect at once) and the
/// mailer (a connection pool) is kept while they stay the same.
async fn mailer_for(inner: &Inner, tenant: &str) -> Result<Option<flowgate_mailer::Mailer>, String> {
    let sealed = inner.store.setting(&smtp_key(tenant)).await.map_err(|e| e.to_string())?.unwrap_or_default();
    if sealed.is_empty() {
        return Ok(inner.settings.mailer.clone());
    }
    let config = open_smtp(inner, tenant, &sealed)?;
    // The host was checked when it was saved, but a name can resolve elsewhere by now (DNS
    // rebinding): it is resolved and checked again at every send, and the mailer connects to
    // the address that passed (issue 13).
    let address = inner.settings.outbound.resolve_checked(&config.host, config.port).await?;
    let key = (sealed, address);
    if let Some((k, m)) = inner.tenant_mailers.lock().expect("mailers lock").get(tenant)
        && *k == key
    {
        return Ok(Some(m.clone()));
    }
    let mailer = flowgate_mailer::Mailer::connecting_to(config, address)
        .map_err(|e| format!("the tenant's SMTP settings: {e}"))?;
    inner.tenant_mailers.lock().expect("mailers lock").insert(tenant.to_owned(), (key, mailer.clone()));
    Ok(Some(mailer))
}

fn open_smtp(inner: &Inner, tenant: &str, sealed: &str) -> Result<flowgate_mailer::SmtpConfig, String> {
    let text =
        inner.sealer.open_str(sealed, &smtp_aad(tenant)).map_err(|e| format!("cannot open the SMTP settings: {e}"))?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

impl crate::Engine {
    /// Sets (or with `None` removes) a tenant's own SMTP server, sealed at rest.
    ///
    /// # Errors
    /// Settings that do not make a mailer, a host the outbound policy refuses, the store.
    pub async fn put_tenant_smtp(
        &self,
        tenant: &str,
        config: Option<&flowgate_mailer::SmtpConfig>,
    ) -> Result<(), String> {
        let Some(config) = config else {
            return self.inner.store.put_setting(&smtp_key(tenant), "").await.map_err(|e| e.to_string());
        };
        flowgate_mailer::Mailer::new(config.clone())?;
        self.inner.settings.outbound.check_host(&config.host, config.port).await?;
        let plain = serde_json::to_string(config).map_err(|e| e.to_string())?;
        let sealed = self.inner.sealer.seal_str(&plain, &smtp_aad(tenant));
        self.inner.store.put_setting(&smtp_key(tenant), &sealed).await.map_err(|e| e.to_string())
    }

    /// A tenant's own SMTP server, if it set one.
    ///
    /// # Errors
    /// The store, or settings that no longer open.
    pub async fn tenant_smtp(&self, tenant: &str) -> Result<Option<flowgate_mailer::SmtpConfig>, String> {
        let sealed = self.inner.store.setting(&smtp_key(tenant)).await.map_err(|e| e.to_string())?.unwrap_or_default();
        if sealed.is_empty() {
            return Ok(None);
        }
        open_smtp(&self.inner, tenant, &sealed).map(Some)
    }

    /// Whether the server has a relay of its own (the fallback of tenants without one).
    pub fn has_smtp_relay(&self) -> bool {
        self.inner.settings.mailer.is_some()
    }
}

/// The `email` step's message, as its template gave it.
fn email(d: &DeliveryRecord, req: &Value) -> Result<Email, String> {
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        }
    };
    let mut attachments = Vec::new();
    for (i, a) in req["attachments"].as_array().into_iter().flatten().enumerate() {
        let content = match (&a["content"], &a["text"]) {
            (Value::String(b64), _) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| format!("attachment {i}: `content` is not base64 (use `text` for text)"))?,
            (_, Value::String(t)) => t.clone().into_bytes(),
            (_, other) if !other.is_null() => other.to_string().into_bytes(),
            _ => return Err(format!("attachment {i} has no `content` (base64) or `text`")),
        };
        attachments.push(EmailAttachment {
            filename: a["filename"].as_str().unwrap_or("attachment").to_owned(),
            content_type: a["contentType"].as_str().unwrap_or("application/octet-stream").to_owned(),
            content,
        });
    }
    Ok(Email {
        from: req["from"].as_str().map(str::to_owned),
        to: list(&req["to"]),
        cc: list(&req["cc"]),
        bcc: list(&req["bcc"]),
        reply_to: req["replyTo"].as_str().map(str::to_owned),
        subject: req["subject"].as_str().unwrap_or("").to_owned(),
        text: req["text"].as_str().map(str::to_owned),
        html: req["html"].as_str().map(str::to_owned),
        attachments,
        headers: headers(d),
    })
}

fn headers(d: &DeliveryRecord) -> Vec<(String, String)> {
    let mut h = vec![("X-Flowgate-Delivery".to_owned(), d.message_id.clone())];
    if let Some(e) = &d.execution_id {
        h.push(("X-Flowgate-Execution".to_owned(), e.clone()));
    }
    h
}

fn notification(d: &DeliveryRecord, req: &Value) -> Email {
    Email {
        to: req["to"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
        subject: req["subject"].as_str().unwrap_or("[Flowgate]").to_owned(),
        text: req["text"].as_str().map(str::to_owned),
        headers: headers(d),
        ..Email::default()
    }
}

/// When this flow's notifications already reached the window's limit: folds this one into
/// the window's digest (made once, sent when the window ends) and says it was handled.
async fn folded(inner: &Inner, d: &DeliveryRecord, req: &Value) -> Option<Sent> {
    let now = inner.clock.now_ms();
    let sent = inner.store.count_deliveries(d.flow_key(), "notification", now - NOTIFY_WINDOW).await.ok()?;
    if sent < NOTIFY_LIMIT || req["event"] != "failed" {
        return None;
    }
    let window = now / NOTIFY_WINDOW;
    let id = format!("digest:{}:{}:{}:{window}", d.tenant_id, d.integration, d.flow);
    let request = json!({
        "digest": true,
        "to": req["to"],
        "from": window * NOTIFY_WINDOW,
        "until": (window + 1) * NOTIFY_WINDOW,
        "integration": d.integration,
        "flow": d.flow,
        "link": req["link"],
    });
    let mut digest = flowgate_store::NewDelivery {
        id: id.clone(),
        tenant_id: d.tenant_id.clone(),
        integration: d.integration.clone(),
        flow: d.flow.clone(),
        execution_id: None,
        step_id: None,
        kind: "notification".into(),
        name: format!("[Flowgate] {} / {}: failures digest", d.integration, d.flow),
        request: inner.sealer.seal_str(&request.to_string(), &aad(&id)),
        message_id: message_id(&id),
        schedule: json!(NOTIFY_SCHEDULE.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>()).to_string(),
        next_at: (window + 1) * NOTIFY_WINDOW,
        created_at: now,
    };
    digest.next_at = digest.next_at.max(now);
    // Made once per window (the id): later failures only count in it.
    let _ = inner.committer.commit(WriteBatch { deliveries: vec![digest], ..WriteBatch::default() }).await;
    Some(Sent::delivered(Instant::now(), json!({ "digestedInto": id })))
}

/// The digest of a window: how many executions of the flow failed in it, the latest ones.
async fn digest(inner: &Inner, d: &DeliveryRecord, req: &Value) -> Email {
    let (from, until) = (req["from"].as_i64().unwrap_or(0), req["until"].as_i64().unwrap_or(0));
    let filter = ExecutionFilter {
        tenant: d.tenant_id.clone(),
        integration: Some(d.integration.clone()),
        flow: Some(d.flow.clone()),
        status: Some("failed".into()),
        from: Some(from),
        to: Some(until),
        ids: Vec::new(),
        through_seq: None,
        ..Default::default()
    };
    let (count, _) = inner.store.count_executions(&filter).await.unwrap_or((0, 0));
    let latest = inner.store.execution_ids(&filter, 0, 20).await.unwrap_or_default();
    let t = crate::clock::rfc3339;
    let mut text = format!(
        "{count} executions of flow {} (integration {}) failed between {} and {}.\n\
         Only the first {NOTIFY_LIMIT} of a window are sent one by one; this digest covers the rest.\n\n",
        d.flow,
        d.integration,
        t(from),
        t(until)
    );
    for (_, id) in latest {
        text.push_str(&format!("  {id}\n"));
    }
    Email {
        to: req["to"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
        subject: d.name.clone(),
        text: Some(text),
        headers: headers(d),
        ..Email::default()
    }
}
