//! What connector steps (`dynamics`, `quickbooks`) share: one request to a provider's API
//! through a connection — its credentials, the outbound policy, the attempt's timeout, one
//! refresh and resend after a `401`, a bounded read — and the answer as JSON. Each connector
//! then reads its provider's errors (Dataverse's `error`, QuickBooks' `Fault`) itself.

use crate::connection::Credentials;
use crate::{StepCx, StepError};
use serde_json::Value;
use std::time::Duration;

/// Largest answer read from a provider.
pub(crate) const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// One request to a provider's API.
pub(crate) struct ApiRequest {
    pub(crate) method: reqwest::Method,
    pub(crate) url: reqwest::Url,
    pub(crate) headers: Vec<(http::HeaderName, String)>,
    pub(crate) body: Option<Value>,
}

/// A provider's answer.
pub(crate) struct ApiAnswer {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    /// The body as JSON (text as a string; empty as null).
    pub(crate) body: Value,
    /// `Retry-After`, when the provider said it.
    pub(crate) retry_after: Option<Duration>,
}

/// Sends `req` with `credentials` (from `cx.connections`); after a `401` the
/// connection is told, and the request goes once more when new credentials come. `what`
/// names the provider in messages (`Dataverse`, `QuickBooks`).
pub(crate) async fn send(
    cx: &StepCx<'_>,
    connection: &str,
    credentials: Credentials,
    req: ApiRequest,
    what: &str,
) -> Result<ApiAnswer, StepError> {
    cx.outbound
        .check_url(&req.url)
        .map_err(|m| StepError::fatal(format!("{}_refused", what.to_ascii_lowercase()), format!("{what}: {m}")))?;
    let shown = crate::util::shown_url(&req.url);
    let build = |c: &Credentials| {
        let mut b = cx.http.request(req.method.clone(), req.url.clone()).timeout(cx.timeout);
        if let Some(tp) = cx.traceparent {
            b = b.header("traceparent", tp);
        }
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        if let Some(body) = &req.body {
            b = b.header(http::header::CONTENT_TYPE, "application/json; charset=utf-8").body(body.to_string());
        }
        c.apply(b)
    };
    let mut answer = one(build(&credentials), &req.method, &shown, what).await?;
    if answer.status == 401 {
        cx.connections.refused(connection, credentials.version).await;
        let fresh = cx.connections.credentials(connection).await?;
        if fresh.version != credentials.version {
            answer = one(build(&fresh), &req.method, &shown, what).await?;
        }
    }
    Ok(answer)
}

async fn one(
    req: reqwest::RequestBuilder,
    method: &reqwest::Method,
    shown: &str,
    what: &str,
) -> Result<ApiAnswer, StepError> {
    let code = |suffix: &str| format!("{}_{suffix}", what.to_ascii_lowercase());
    let mut resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            StepError::retryable(code("timeout"), format!("{what}: {method} {shown} timed out"))
        } else {
            StepError::retryable(
                code("unreachable"),
                format!("{what}: {method} {shown}: {}", crate::util::error_causes(&e)),
            )
        }
    })?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let retry_after =
        headers.get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(crate::http::parse_retry_after);
    let mut bytes = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if bytes.len() + c.len() > MAX_ANSWER_BYTES {
                    return Err(StepError::fatal(
                        code("too_large"),
                        format!("{what}: the answer is larger than {MAX_ANSWER_BYTES} bytes"),
                    ));
                }
                bytes.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(StepError::retryable(
                    code("unreachable"),
                    format!("{what}: reading the answer: {}", crate::util::error_causes(&e)),
                ));
            }
        }
    }
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok(ApiAnswer { status, headers, body, retry_after })
}

/// The text a template gave, for a URL segment or a header.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
