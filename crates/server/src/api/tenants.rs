//! Tenants, managed by the server administrator (the admin token, not a tenant's token).

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, parse_json};
use crate::{ApiBody, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_engine::tokens::TenantError;
use serde::Deserialize;
use serde_json::json;

/// Body of `POST /v1/tenants`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Slug: part of every webhook URL of the tenant.
    id: String,
    /// Display name (default: the id).
    #[serde(default)]
    name: Option<String>,
}

/// `POST /v1/tenants`: a new tenant and its first API token (shown in this answer only).
pub async fn create(State(st): State<AppState>, _: Admin, ApiBody(body): ApiBody) -> ApiResult<Response> {
    let req: CreateTenant = parse_json(&body)?;
    // The engine's, which the console's tenants page shares.
    let t = st.engine.create_tenant(&req.id, req.name.as_deref()).await.map_err(|e| match e {
        TenantError::Invalid(m) => ApiError::bad_request(m).details(json!({ "field": "id" })),
        TenantError::Exists(m) => ApiError::conflict(m),
        TenantError::Store(e) => e.into(),
    })?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "id": t.id, "name": t.name, "token": t.token, "tokenId": t.token_id })),
    )
        .into_response())
}

/// `GET /v1/tenants`.
pub async fn list(State(st): State<AppState>, _: Admin) -> ApiResult<Response> {
    let items: Vec<_> = st
        .engine
        .store()
        .tenants()
        .await?
        .into_iter()
        .map(|t| json!({ "id": t.id, "name": t.name, "createdAt": flowgate_engine::clock::rfc3339(t.created_at) }))
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}
