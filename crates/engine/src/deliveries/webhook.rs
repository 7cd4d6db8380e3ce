//! Sending a webhook delivery: the POST with its stable `webhook-id`, the auth its request
//! names, the answer's excerpt; and checking a webhook request a template gave.

use super::sent::Sent;
use crate::Inner;
use base64::Engine as _;
use flowgate_store::DeliveryRecord;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::{Duration, Instant};

/// Longest one webhook attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an answer is kept with an attempt.
const EXCERPT_BYTES: usize = 1024;

/// POSTs a webhook: JSON body, the stable `webhook-id`, the auth the request names.
pub(super) async fn send_webhook(inner: &Inner, d: &DeliveryRecord, req: &Value) -> Sent {
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
            Sent { latency_ms, ..fail(format!("{what}: {}", flowgate_steps::util::error_causes(&e)), false) }
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
