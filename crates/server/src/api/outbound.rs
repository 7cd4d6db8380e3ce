//! Outbound deliveries (webhooks, e-mails, notifications): read one with its attempts,
//! resend it; the tenant's own SMTP server; and the tenant's log sources (SIEM sinks).

use crate::auth::Caller;
use crate::error::ApiPath as Path;
use crate::error::{ApiError, ApiResult, parse_json};
use crate::{ApiBody, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `GET /v1/deliveries/{id}`: a delivery and every attempt (status, latency, excerpt).
pub async fn get(State(st): State<AppState>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let v = st
        .engine
        .delivery_view(&who.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery `{id}`")))?;
    Ok(axum::Json(v).into_response())
}

/// `POST /v1/deliveries/{id}/resend`: sends a delivered or failed delivery again (same
/// message id, so the receiver can tell it is the same message).
pub async fn resend(State(st): State<AppState>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let v = st.engine.resend(&who.tenant_id, &id).await.map_err(|e| match e {
        flowgate_store::Error::NotFound => ApiError::not_found(format!("no delivery `{id}`")),
        other => other.into(),
    })?;
    Ok((StatusCode::ACCEPTED, axum::Json(v)).into_response())
}

/// `GET /v1/log-sources`: the tenant's log sources with their counters (sent, dropped…).
pub async fn list_sources(State(st): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    Ok(axum::Json(json!({ "items": st.engine.log_sources(&who.tenant_id).await? })).into_response())
}

/// `GET /v1/log-sources/{name}`.
pub async fn get_source(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let all = st.engine.log_sources(&who.tenant_id).await?;
    let one = all
        .into_iter()
        .find(|s| s["name"] == name.as_str())
        .ok_or_else(|| ApiError::not_found(format!("no log source `{name}`")))?;
    Ok(axum::Json(one).into_response())
}

/// `PUT /v1/log-sources/{name}`: `{"syslog": {"url": "udp://…"}}`, `{"http": {"url": …}}` or
/// `{"file": {"path": …}}`.
pub async fn put_source(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiBody(body): ApiBody,
) -> ApiResult<Response> {
    if !flowgate_model::is_slug(&name) {
        return Err(ApiError::bad_request(format!("invalid log source name `{name}`: expected a slug")));
    }
    let config: flowgate_sinks::SinkConfig = parse_json(&body)?;
    st.engine
        .put_log_source(&who.tenant_id, &name, &config)
        .await
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_log_source", m))?;
    let all = st.engine.log_sources(&who.tenant_id).await?;
    let one = all.into_iter().find(|s| s["name"] == name.as_str()).unwrap_or_default();
    Ok(axum::Json(one).into_response())
}

/// `DELETE /v1/log-sources/{name}`.
pub async fn delete_source(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    if !st.engine.delete_log_source(&who.tenant_id, &name).await? {
        return Err(ApiError::not_found(format!("no log source `{name}`")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body of `PUT /v1/smtp`: a URL, or the fields (the mailer's, which the console shares).
use flowgate_mailer::SmtpSettings as SmtpBody;

/// The SMTP settings as shown: everything but the password.
fn smtp_view(c: Option<&flowgate_mailer::SmtpConfig>, relay: bool) -> serde_json::Value {
    match c {
        Some(c) => json!({
            "source": "tenant",
            "host": c.host,
            "port": c.port,
            "security": c.security,
            "username": c.username,
            "passwordSet": c.password.is_some(),
            "from": c.from,
            "timeoutMs": c.timeout_ms,
        }),
        None => json!({ "source": if relay { "server" } else { "none" } }),
    }
}

/// `GET /v1/smtp`: the tenant's SMTP server (never its password), or which one it uses.
pub async fn get_smtp(State(st): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    let c = st.engine.tenant_smtp(&who.tenant_id).await.map_err(ApiError::internal)?;
    Ok(axum::Json(smtp_view(c.as_ref(), st.engine.has_smtp_relay())).into_response())
}

/// `PUT /v1/smtp`: `{"url": "smtp+starttls://user:pass@host:587?from=…"}` or `{"host", "port",
/// "security": "starttls"|"tls"|"none", "username", "password", "from"}`; e-mail steps and
/// notifications of the tenant go through it.
pub async fn put_smtp(State(st): State<AppState>, Caller(who): Caller, ApiBody(body): ApiBody) -> ApiResult<Response> {
    let body: SmtpBody = parse_json(&body)?;
    let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_smtp", m);
    let config = body.config().map_err(invalid)?;
    st.engine.put_tenant_smtp(&who.tenant_id, Some(&config)).await.map_err(invalid)?;
    Ok(axum::Json(smtp_view(Some(&config), st.engine.has_smtp_relay())).into_response())
}

/// `DELETE /v1/smtp`: back to the server's relay.
pub async fn delete_smtp(State(st): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    st.engine.put_tenant_smtp(&who.tenant_id, None).await.map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
