//! The `http` step's request: build, send, read (bounded), classify.

use crate::{Outcome, Step, StepCx, StepError};
use async_trait::async_trait;
use base64::Engine as _;
use flowgate_expr::{Template, to_text};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Largest response body read, in bytes; a larger one fails the step.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// How much of an error response is kept in the error's details.
const ERROR_EXCERPT_BYTES: usize = 1024;

#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyKind {
    None,
    Json,
    Text,
    Form,
}

pub(crate) struct Http {
    pub(crate) method: reqwest::Method,
    pub(crate) spec: Arc<Template>,
    pub(crate) body_kind: BodyKind,
    pub(crate) success: Vec<(u16, u16)>,
    pub(crate) idempotency_header: Option<http::HeaderName>,
    pub(crate) connection: Option<String>,
}

/// Where a request goes instead of its own URL, and query parameters set on top of its own:
/// the next page of a paginated source.
#[derive(Debug, Clone, Default)]
pub struct PageOverride {
    /// The URL to fetch (absolute, or relative to the request's own URL).
    pub url: Option<String>,
    /// Query parameters replacing any of the same name.
    pub query: Vec<(String, String)>,
}

/// An HTTP request with the `http` step's options, for callers other than a step (a poll
/// trigger): same templates, same limits, same classification of failures.
pub struct Request(Http, Duration);

impl Request {
    /// Decodes and compiles the `http` step's options found at `path`.
    pub fn compile(value: &Value, path: &flowgate_model::Path, diags: &mut flowgate_model::Diags) -> Option<Request> {
        let config: super::HttpConfig = flowgate_model::decode::decode(value, path, diags)?;
        let mut http = config.compile_http(path, diags)?;
        http.idempotency_header = None;
        Some(Request(http, config.timeout.map_or(crate::plan::DEFAULT_STEP_TIMEOUT, |t| t.0)))
    }

    /// Longest one request may take (its `timeout`, default 30 s).
    pub fn timeout(&self) -> Duration {
        self.1
    }

    /// Sends it: the output is `{status, headers, body}`, as the `http` step's.
    ///
    /// # Errors
    /// As the `http` step: classified failures.
    pub async fn send(&self, input: &Value, cx: &mut StepCx<'_>, page: &PageOverride) -> Result<Value, StepError> {
        self.0.send(input, cx, Some(page)).await
    }
}

#[async_trait]
impl Step for Http {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        self.send(input, cx, None).await.map(Outcome::Output)
    }

    fn side_effects(&self) -> bool {
        true
    }
}

impl Http {
    async fn send(&self, input: &Value, cx: &mut StepCx<'_>, page: Option<&PageOverride>) -> Result<Value, StepError> {
        let spec = cx.evaluator.eval(&self.spec, input, &cx.scope).await?;
        let url = match &spec["url"] {
            Value::String(s) => s.clone(),
            other => to_text(other),
        };
        let mut parsed = reqwest::Url::parse(&url)
            .ok()
            .filter(|u| u.scheme() == "http" || u.scheme() == "https")
            .ok_or_else(|| StepError::fatal("http_url", "invalid URL: expected an http:// or https:// URL"))?;
        if let Some(next) = page.and_then(|p| p.url.as_deref()) {
            parsed = parsed
                .join(next)
                .ok()
                .filter(|u| u.scheme() == "http" || u.scheme() == "https")
                .ok_or_else(|| StepError::fatal("http_url", "invalid next-page URL: expected an http(s) URL"))?;
        }
        // Messages name the URL without its query and credentials, which may hold secrets.
        let url = crate::util::shown_url(&parsed);
        cx.outbound
            .check_url(&parsed)
            .map_err(|m| StepError::fatal("http_refused", format!("{} {url}: {m}", self.method)))?;
        let mut req = cx.http.request(self.method.clone(), parsed).timeout(cx.timeout);
        if let Some(h) = &self.idempotency_header {
            req = req.header(h, cx.idempotency_key);
        }
        if let Some(tp) = cx.traceparent
            && !spec["headers"].as_object().is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("traceparent")))
        {
            req = req.header("traceparent", tp);
        }
        if let Value::Object(headers) = &spec["headers"] {
            for (k, v) in headers {
                if !v.is_null() {
                    req = req.header(k.as_str(), to_text(v));
                }
            }
        }
        let own_query = page.is_none_or(|p| p.url.is_none());
        if let (true, Value::Object(q)) = (own_query, &spec["query"]) {
            let mut pairs = pairs(q);
            if let Some(p) = page {
                pairs.retain(|(k, _)| !p.query.iter().any(|(pk, _)| pk == k));
            }
            if !pairs.is_empty() {
                req = req.query(&pairs);
            }
        }
        if let Some(p) = page.filter(|p| !p.query.is_empty()) {
            req = req.query(&p.query);
        }
        req = match self.body_kind {
            BodyKind::None => req,
            BodyKind::Json => req.json(&spec["json"]),
            BodyKind::Text => req.body(to_text(&spec["body"])),
            BodyKind::Form => match &spec["form"] {
                Value::Object(f) => req.form(&pairs(f)),
                _ => req,
            },
        };
        let sent =
            |req: reqwest::RequestBuilder| async { req.send().await.map_err(|e| send_error(&self.method, &url, &e)) };
        let resp = match &self.connection {
            None => sent(req).await?,
            Some(name) => {
                let credentials = cx.connections.credentials(name).await?;
                let again = req.try_clone();
                let resp = sent(credentials.apply(req)).await?;
                match again {
                    // Refused: a token revoked or expired early. Once more with a new one, if
                    // the connection can get one (a fixed key cannot).
                    Some(again) if resp.status() == http::StatusCode::UNAUTHORIZED => {
                        cx.connections.refused(name, credentials.version).await;
                        let fresh = cx.connections.credentials(name).await?;
                        if fresh.version == credentials.version { resp } else { sent(fresh.apply(again)).await? }
                    }
                    _ => resp,
                }
            }
        };
        let status = resp.status().as_u16();
        let headers = response_headers(resp.headers());
        let retry_after =
            resp.headers().get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let is_json = resp.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
            let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            ct == "application/json" || ct.ends_with("+json")
        });
        let bytes = read_bounded(resp).await.map_err(|e| match e {
            ReadError::TooLarge => StepError::fatal(
                "http_response_too_large",
                format!("{} {url}: response body is larger than {MAX_RESPONSE_BYTES} bytes", self.method),
            ),
            ReadError::Http(e) => StepError::retryable(
                "http_body",
                format!("{} {url}: reading the response failed: {}", self.method, crate::util::error_causes(&e)),
            ),
        })?;
        let body = decode_body(&bytes, is_json);
        if !self.success.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status)) {
            let retryable = status >= 500 || status == 429 || status == 408;
            let excerpt = String::from_utf8_lossy(&bytes[..bytes.len().min(ERROR_EXCERPT_BYTES)]).into_owned();
            let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
            return Err(StepError {
                code: "http_status".into(),
                message: format!("{} {url} answered {status} {reason}", self.method).trim_end().to_owned(),
                retryable,
                retry_after,
                details: Some(json!({ "status": status, "body": excerpt })),
            });
        }
        Ok(json!({ "status": status, "headers": headers, "body": body }))
    }
}

/// Query or form pairs: lists repeat the key, nulls are left out, values are text.
fn pairs(m: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(m.len());
    for (k, v) in m {
        match v {
            Value::Null => {}
            Value::Array(items) => out.extend(items.iter().filter(|x| !x.is_null()).map(|x| (k.clone(), to_text(x)))),
            other => out.push((k.clone(), to_text(other))),
        }
    }
    out
}

fn send_error(method: &reqwest::Method, url: &str, e: &reqwest::Error) -> StepError {
    let cause = crate::util::error_causes(e);
    if e.is_timeout() {
        StepError::retryable("http_timeout", format!("{method} {url} timed out"))
    } else if e.is_connect() {
        StepError::retryable("http_connect", format!("{method} {url}: cannot connect: {cause}"))
    } else if e.is_builder() {
        StepError::fatal("http_request", format!("{method} {url}: invalid request: {cause}"))
    } else {
        StepError::retryable("http_error", format!("{method} {url}: {cause}"))
    }
}

fn response_headers(h: &http::HeaderMap) -> Value {
    let mut out = Map::new();
    for (name, value) in h {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match out.get_mut(name.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                out.insert(name.as_str().to_owned(), Value::String(v));
            }
        }
    }
    Value::Object(out)
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v.trim()).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

enum ReadError {
    TooLarge,
    Http(reqwest::Error),
}

async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n as usize > MAX_RESPONSE_BYTES) {
        return Err(ReadError::TooLarge);
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Http)? {
        if buf.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ReadError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

fn decode_body(bytes: &[u8], is_json: bool) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    if is_json && let Ok(v) = serde_json::from_slice(bytes) {
        return v;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}
