//! Connections of an integration: status (never a secret), a test, the provider URL that
//! authorizes one, and the provider's redirect back (`/oauth/callback`, outside `/v1`: the
//! browser that comes back carries no token; the single-use `state` is its credential).

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::error::{ApiPath as Path, ApiQuery};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use flowgate_engine::connections::ConnectionError;
use serde_json::json;
use std::collections::HashMap;

fn api_error(e: ConnectionError) -> ApiError {
    match e {
        ConnectionError::NotFound(m) => ApiError::not_found(m),
        ConnectionError::Invalid(m) => ApiError::bad_request(m),
        ConnectionError::Failed { code, message } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "connection_failed", message).details(json!({ "code": code }))
        }
        ConnectionError::Store(e) => e.into(),
    }
}

/// `GET /v1/integrations/{slug}/connections`
pub async fn list(State(st): State<AppState>, Caller(who): Caller, Path(slug): Path<String>) -> ApiResult<Response> {
    let all = st
        .engine
        .connections(&who.tenant_id, &slug)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no integration `{slug}`")))?;
    Ok(axum::Json(json!({ "connections": all })).into_response())
}

/// `GET /v1/integrations/{slug}/connections/{name}`
pub async fn get(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((slug, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let all = st
        .engine
        .connections(&who.tenant_id, &slug)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no integration `{slug}`")))?;
    let one = all
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no connection `{name}` in `{slug}`")))?;
    Ok(axum::Json(one).into_response())
}

/// `POST /v1/integrations/{slug}/connections/{name}/test`
pub async fn test(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((slug, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let status = st.engine.test_connection(&who.tenant_id, &slug, &name).await.map_err(api_error)?;
    Ok(axum::Json(json!({ "ok": true, "connection": status })).into_response())
}

/// `GET /v1/integrations/{slug}/connections/{name}/authorize`
pub async fn authorize(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((slug, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let url = st.engine.authorize_connection(&who.tenant_id, &slug, &name).await.map_err(api_error)?;
    Ok(axum::Json(json!({ "url": url, "expiresIn": 600 })).into_response())
}

/// `GET /oauth/callback`: a page for the person who authorized.
pub async fn callback(State(st): State<AppState>, ApiQuery(q): ApiQuery<HashMap<String, String>>) -> Response {
    match st.engine.oauth_callback(&q).await {
        Ok((_, integration, connection)) => page(
            StatusCode::OK,
            "Connection ready",
            &format!(
                "Connection “{connection}” of integration “{integration}” is authorized and ready. You can close this window."
            ),
        ),
        Err(ConnectionError::Store(e)) => {
            tracing::error!(error = %e, "OAuth callback: the store failed.");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "The authorization could not be stored. Try again in a moment.",
            )
        }
        Err(ConnectionError::Failed { message, .. }) => page(StatusCode::BAD_GATEWAY, "Not authorized", &message),
        Err(ConnectionError::NotFound(m) | ConnectionError::Invalid(m)) => {
            page(StatusCode::BAD_REQUEST, "Not authorized", &m)
        }
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · Flowgate</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{t}</h1><p>{x}</p></body></html>",
        t = escape(title),
        x = escape(text)
    );
    let mut r = (status, Html(body)).into_response();
    r.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    r
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
