//! Webhook ingress, `/hooks/{tenant}/{path}` (stage 1, DESIGN §5).
//!
//! Routes the request with a lock-free lookup, authenticates it, checks its signature (when
//! the trigger has `verify`, over the raw body), turns it into a trigger
//! event, and has the engine commit it (group commit) before answering: 202 with the
//! execution id and a status URL (`async`), or the execution's answer (`sync`).
//! Also serves the status URLs, which are capability URLs signed with the server's key.

use crate::AppState;
use crate::auth::{HookAuth, check_hook, status_signature};
use crate::error::ApiPath as Path;
use crate::error::ApiQuery;
use crate::error::{ApiError, ApiResult};
use crate::present;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use flowgate_engine::{InboundWebhook, Submission, SyncOutcome, Wait};
use flowgate_model::RespondMode;
use flowgate_store::Status;
use serde_json::{Map, Value, json};

/// Header carrying the execution id on webhook answers.
pub const EXECUTION_HEADER: &str = "x-flowgate-execution-id";
/// Header set on the answer to a repeated delivery (the id is the first execution's).
pub const DUPLICATE_HEADER: &str = "x-flowgate-duplicate";

/// How a refused submission is answered.
pub fn submit_error(e: flowgate_engine::SubmitError) -> ApiError {
    use flowgate_engine::SubmitError as E;
    match e {
        E::Expression(m) => {
            // Callers never see an evaluation's message: it may quote config values (issue
            // 13). The operator's log has it; the tenant sees the flow's key expression fail
            // when they test it.
            tracing::warn!(error = %m, "An event was refused: its delivery key could not be computed.");
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the event was refused: the flow's orderBy or dedupKey expression cannot be computed on it",
            )
        }
        E::Busy(m) => ApiError::unavailable(m),
        E::ShuttingDown => ApiError::unavailable("the server is shutting down"),
        E::Commit(e) => ApiError::unavailable(format!("the event could not be stored: {e}")),
    }
}

/// Handles a webhook request.
pub async fn hook(
    State(st): State<AppState>,
    Path((tenant, path)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(st, tenant, path, method, uri, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    st: AppState,
    tenant: String,
    path: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let path = path.trim_matches('/');
    let flow = st
        .engine
        .registry()
        .route(&tenant, path)
        .ok_or_else(|| ApiError::not_found(format!("no active webhook at /hooks/{tenant}/{path}")))?;
    let Some(hook) = flow.webhook() else { return Err(ApiError::not_found("no active webhook at this path")) };
    if !hook.methods.iter().any(|m| m.as_str() == method.as_str()) {
        let allow: Vec<&str> = hook.methods.iter().map(|m| m.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this webhook accepts {}", allow.join(", ")),
        )
        .header(http::header::ALLOW, allow.join(", ")));
    }
    let query_pairs: Vec<(String, String)> = match uri.query() {
        Some(q) => {
            serde_urlencoded::from_str(q).map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?
        }
        None => Vec::new(),
    };
    let auth_label = match check_hook(&hook.auth, &headers, &query_pairs) {
        HookAuth::Ok(label) => label,
        HookAuth::Denied => {
            // Which scheme the webhook expects (never its secret), so a caller can tell a
            // wrong credential from a credential sent the wrong way.
            use flowgate_engine::{AuthSpec, KeyLocation};
            let expected = match &hook.auth {
                AuthSpec::Bearer { .. } => "an `Authorization: Bearer <token>` header".to_owned(),
                AuthSpec::Basic { .. } => "an `Authorization: Basic <user:password in base64>` header".to_owned(),
                AuthSpec::Header { name, .. } => format!("the `{name}` header"),
                AuthSpec::ApiKey { location: KeyLocation::Header(name), .. } => {
                    format!("an API key in the `{name}` header")
                }
                AuthSpec::ApiKey { location: KeyLocation::Query(name), .. } => {
                    format!("an API key in the `{name}` query parameter")
                }
                AuthSpec::None => "no credentials".to_owned(),
            };
            let mut e = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("authentication failed: this webhook expects {expected}"),
            );
            match &hook.auth {
                AuthSpec::Bearer { .. } => e = e.header(http::header::WWW_AUTHENTICATE, "Bearer"),
                AuthSpec::Basic { .. } => e = e.header(http::header::WWW_AUTHENTICATE, "Basic realm=\"flowgate\""),
                _ => {}
            }
            return Err(e);
        }
    };
    // Read within the node's memory budget: the reservation stays with the event until its
    // execution ends.
    let crate::body::ReadBody { bytes: body, reservation } =
        crate::body::read(&st, body, &headers, st.settings.max_body_bytes, true).await?;
    // The signature covers the raw body exactly as received: checked before any parsing.
    if let Some(verify) = &hook.verify
        && let Err(refused) = verify.check(&headers, &body, st.engine.clock().now_ms())
    {
        tracing::debug!(tenant, path, scheme = verify.scheme(), %refused, "webhook signature refused");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", refused.to_string()));
    }
    let query = query_object(hook, &query_pairs)?;
    let (event, event_json) = trigger_event(hook, &method, path, &headers, query, &body, st.engine.clock().now_ms())?;
    // The body's bytes are in the event's text now (or its tree): not kept twice.
    drop(body);
    let sync = hook.respond.mode == RespondMode::Sync;
    let submitted = st
        .engine
        .submit(Submission {
            flow: flow.clone(),
            trigger: event,
            kind: "webhook",
            auth_label,
            replay_of: None,
            wait: if sync { Wait::FirstAnswer } else { Wait::No },
            options: flowgate_engine::SubmitOptions {
                reservation,
                event_json,
                // The caller's trace continues through the execution.
                traceparent: headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned),
                ..Default::default()
            },
        })
        .await
        .map_err(submit_error)?;
    let status_url = st.status_url(&submitted.id);
    if submitted.duplicate {
        // A repeat of a delivery seen before: the first execution's id (and answer, for sync).
        let outcome = if sync { st.engine.outcome_of(&submitted.id, hook.respond.timeout.0).await } else { None };
        // Marked as a repeat either way, so a caller can tell it from a first answer.
        let mut r = match outcome {
            Some(outcome) => sync_answer(&submitted.id, outcome),
            None => accepted(&submitted.id, &status_url),
        };
        r.headers_mut().insert(DUPLICATE_HEADER, HeaderValue::from_static("true"));
        return Ok(r);
    }
    let Some(waiter) = submitted.waiter else {
        return Ok(accepted(&submitted.id, &status_url));
    };
    match tokio::time::timeout(hook.respond.timeout.0, waiter).await {
        Ok(Ok(outcome)) => Ok(sync_answer(&submitted.id, outcome)),
        Ok(Err(_)) | Err(_) => {
            st.engine.forget_waiter(&submitted.id);
            Ok(accepted(&submitted.id, &status_url))
        }
    }
}

fn accepted(id: &str, status_url: &str) -> Response {
    let mut r =
        (StatusCode::ACCEPTED, axum::Json(json!({ "executionId": id, "statusUrl": status_url }))).into_response();
    if let Ok(v) = HeaderValue::from_str(id) {
        r.headers_mut().insert(EXECUTION_HEADER, v);
    }
    r
}

/// The answer to a sync caller once the execution responded or ended.
pub fn sync_answer(id: &str, outcome: SyncOutcome) -> Response {
    // A `respond` step's answer wins even when the caller learns of it only at the end (the
    // execution ran on another node and had finished by the time this one read it).
    let outcome = match outcome {
        SyncOutcome::Finished { response: Some(r), .. } => SyncOutcome::Responded(r),
        other => other,
    };
    let mut r = match outcome {
        SyncOutcome::Responded(resp) => {
            let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK);
            let mut r = match resp.body {
                Value::String(s) => (status, s).into_response(),
                Value::Null if status == StatusCode::NO_CONTENT => status.into_response(),
                other => (status, axum::Json(other)).into_response(),
            };
            for (k, v) in resp.headers {
                if let (Ok(k), Ok(v)) =
                    (http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&flowgate_expr::to_text(&v)))
                {
                    r.headers_mut().insert(k, v);
                }
            }
            r
        }
        SyncOutcome::Finished { status: Status::Succeeded, output, .. } => {
            (StatusCode::OK, axum::Json(output.unwrap_or(Value::Null))).into_response()
        }
        SyncOutcome::Finished { status: Status::Filtered, .. } => {
            (StatusCode::OK, axum::Json(json!({ "executionId": id, "status": "filtered" }))).into_response()
        }
        // The caller learns where and how it failed, never the message: step errors may carry
        // URLs and upstream answers built from secrets. The API shows the full error.
        SyncOutcome::Finished { status, error, .. } => {
            let step = error.as_ref().map_or(Value::Null, |e| e["step"].clone());
            let code = error.as_ref().map_or(Value::Null, |e| e["code"].clone());
            let message = match step.as_str() {
                Some(s) if status == Status::Failed => format!("the execution failed at step `{s}`"),
                _ => format!("the execution ended {}", status.as_str()),
            };
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "execution_failed", message)
                .details(json!({ "executionId": id, "status": status.as_str(), "step": step, "errorCode": code }))
                .into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(id) {
        r.headers_mut().insert(EXECUTION_HEADER, v);
    }
    r
}

/// Query parameters as an object: declared defaults applied, required ones checked,
/// undeclared ones kept. A repeated parameter becomes a list of strings.
fn query_object(hook: &InboundWebhook, pairs: &[(String, String)]) -> ApiResult<Map<String, Value>> {
    let mut q = Map::new();
    for (k, v) in pairs {
        match q.get_mut(k) {
            Some(Value::Array(list)) => list.push(Value::String(v.clone())),
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, Value::String(v.clone())]);
            }
            None => {
                q.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    let mut missing = Vec::new();
    for (name, p) in &hook.query {
        if q.contains_key(name) {
            continue;
        }
        match &p.default {
            Some(d) => {
                q.insert(name.clone(), Value::String(d.clone()));
            }
            None if p.required => missing.push(name.clone()),
            None => {}
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::bad_request(format!(
            "missing required query parameter{}: {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        ))
        .details(json!({ "missing": missing })));
    }
    // The API key must not be kept in the event when it travels in the query.
    if let flowgate_engine::AuthSpec::ApiKey { location: flowgate_engine::KeyLocation::Query(name), .. } = &hook.auth
        && q.contains_key(name)
    {
        q.insert(name.clone(), json!("[redacted]"));
    }
    Ok(q)
}

/// Builds `$trigger` from the request: `{method, path, headers, query, body, receivedAt}`
/// (plus `contentType`, and `bodyEncoding: base64` for binary bodies). Credentials are
/// redacted from the stored headers.
///
/// A JSON body is not turned into a tree here: it is checked (valid UTF-8 and JSON, nested
/// at most as deep as the journal reads back) and spliced as received into the event's JSON
/// text, the second value returned; the first then holds the event without its body. The
/// tree is built where an expression needs it (issue 12: a 10 MiB array of numbers is a
/// 200 MB tree).
fn trigger_event(
    hook: &InboundWebhook,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    query: Map<String, Value>,
    body: &Bytes,
    now: i64,
) -> ApiResult<(Value, Option<String>)> {
    let secret_header = match &hook.auth {
        flowgate_engine::AuthSpec::Header { name, .. } => Some(name.clone()),
        flowgate_engine::AuthSpec::ApiKey { location: flowgate_engine::KeyLocation::Header(h), .. } => Some(h.clone()),
        _ => None,
    };
    let mut hmap = Map::with_capacity(headers.len());
    for (name, value) in headers {
        let redact = name == http::header::AUTHORIZATION || secret_header.as_ref() == Some(name);
        let v = if redact { "[redacted]".to_owned() } else { String::from_utf8_lossy(value.as_bytes()).into_owned() };
        match hmap.get_mut(name.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                hmap.insert(name.as_str().to_owned(), Value::String(v));
            }
        }
    }
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let raw_json = json_body(content_type, body)?;
    let (body, encoding) = match raw_json {
        Some(_) => (Value::Null, None),
        None => parse_body(content_type, body)?,
    };
    let mut event = Map::with_capacity(8);
    event.insert("method".into(), json!(method.as_str()));
    event.insert("path".into(), json!(path));
    event.insert("headers".into(), Value::Object(hmap));
    event.insert("query".into(), Value::Object(query));
    event.insert("body".into(), body);
    event.insert("receivedAt".into(), json!(flowgate_engine::clock::rfc3339(now)));
    if !content_type.is_empty() {
        event.insert("contentType".into(), json!(content_type));
    }
    if let Some(enc) = encoding {
        event.insert("bodyEncoding".into(), json!(enc));
    }
    let text = raw_json.map(|raw| {
        let mut text = String::with_capacity(raw.len() + 512);
        text.push('{');
        for (i, (k, v)) in event.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&Value::String(k.clone()).to_string());
            text.push(':');
            if k == "body" {
                text.push_str(raw);
            } else {
                text.push_str(&v.to_string());
            }
        }
        text.push('}');
        text
    });
    Ok((Value::Object(event), text))
}

/// Deepest nesting of a JSON body: the event around it adds a level, and the whole must stay
/// what the journal can read back (`serde_json`'s limit, 127) — found by fuzzing (issue 12).
const MAX_BODY_NESTING: usize = 126;

/// A JSON body, checked without building its tree: its text, or `None` when the body is
/// not JSON by its content type (or empty).
///
/// # Errors
/// `400 invalid_body` when it is not UTF-8, not JSON, or nested too deeply.
pub fn json_body<'b>(content_type: &str, body: &'b [u8]) -> ApiResult<Option<&'b str>> {
    if body.is_empty() || !is_json(content_type, body) {
        return Ok(None);
    }
    let invalid = |m: String, line: usize, column: usize| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", format!("the body is not valid JSON: {m}"))
            .details(json!({ "line": line, "column": column }))
    };
    let text = std::str::from_utf8(body).map_err(|e| invalid(e.to_string(), 0, 0))?;
    let depth = flowgate_expr::value::json_nesting(body);
    if depth > MAX_BODY_NESTING {
        return Err(invalid(format!("it nests {depth} levels deep; the limit is {MAX_BODY_NESTING}"), 0, 0));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| invalid(e.to_string(), e.line(), e.column()))?;
    Ok(Some(text))
}

fn is_json(content_type: &str, body: &[u8]) -> bool {
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json"
        || mime.ends_with("+json")
        || (mime.is_empty() && body.first().is_some_and(|b| *b == b'{' || *b == b'['))
}

/// Parses a body by its content type: JSON, forms (to an object), text and XML (a string),
/// anything else base64.
pub fn parse_body(content_type: &str, body: &[u8]) -> ApiResult<(Value, Option<&'static str>)> {
    if body.is_empty() {
        return Ok((Value::Null, None));
    }
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if is_json(content_type, body) {
        return serde_json::from_slice(body).map(|v| (v, None)).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", format!("the body is not valid JSON: {e}"))
                .details(json!({ "line": e.line(), "column": e.column() }))
        });
    }
    if mime == "application/x-www-form-urlencoded" {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", format!("the body is not a valid form: {e}"))
        })?;
        let mut m = Map::new();
        for (k, v) in pairs {
            match m.get_mut(&k) {
                Some(Value::Array(list)) => list.push(Value::String(v)),
                Some(prev) => {
                    let first = prev.take();
                    *prev = Value::Array(vec![first, Value::String(v)]);
                }
                None => {
                    m.insert(k, Value::String(v));
                }
            }
        }
        return Ok((Value::Object(m), None));
    }
    let textual = mime.starts_with("text/") || mime.ends_with("/xml") || mime.ends_with("+xml") || mime.is_empty();
    match (textual, std::str::from_utf8(body)) {
        (true, Ok(s)) => Ok((Value::String(s.to_owned()), None)),
        _ => Ok((Value::String(base64::engine::general_purpose::STANDARD.encode(body)), Some("base64"))),
    }
}

/// Query of a status URL.
#[derive(serde::Deserialize)]
pub struct StatusQuery {
    sig: Option<String>,
}

/// `GET /status/{id}?sig=…`: an execution's status and result, for the webhook's caller.
pub async fn status(
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> ApiResult<Response> {
    let expected = status_signature(&st.status_key, &id);
    if !q.sig.as_deref().is_some_and(|s| crate::auth::secret_eq(s.as_bytes(), expected.as_bytes())) {
        return Err(ApiError::not_found("no such execution"));
    }
    let row = st.engine.store().execution(None, &id).await?.ok_or_else(|| ApiError::not_found("no such execution"))?;
    Ok(axum::Json(present::status(&row)).into_response())
}

/// `POST /resume/{id}?sig=…`: the call a `wait` step waits for (`$execution.resumeUrl`);
/// the JSON body (or `null`) becomes the step's output. The signature is the credential.
pub async fn resume(
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<StatusQuery>,
    crate::ApiBody(body): crate::ApiBody,
) -> ApiResult<Response> {
    let expected = st.engine.resume_signature(&id);
    if !q.sig.as_deref().is_some_and(|s| crate::auth::secret_eq(s.as_bytes(), expected.as_bytes())) {
        return Err(ApiError::not_found("no such execution"));
    }
    let value: Value =
        if body.iter().all(u8::is_ascii_whitespace) { Value::Null } else { crate::error::parse_json(&body)? };
    match st.engine.resume(&id, &value).await? {
        flowgate_engine::waits::Resumed::Resumed => {
            Ok((StatusCode::ACCEPTED, axum::Json(json!({ "executionId": id, "resumed": true }))).into_response())
        }
        flowgate_engine::waits::Resumed::NotWaiting => {
            Err(ApiError::conflict("the execution is not waiting for a call (never did, already called, or timed out)"))
        }
    }
}

/// Helper for tests and the API: the status URL of an execution.
pub fn status_path(key: &[u8], id: &str) -> String {
    format!("/status/{id}?sig={}", status_signature(key, id))
}

/// The trigger event of a manual or test run (the engine's, which the console shares).
pub use flowgate_engine::run_event;
