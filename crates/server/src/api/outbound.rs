//! Outbound deliveries (webhooks, e-mails, notifications): read one with its attempts,
//! resend it; and the tenant's log sources (SIEM sinks).

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, parse_json};
use crate::{ApiBody, AppState};
use axum::extract::{Path, State};
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
