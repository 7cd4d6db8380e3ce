//! Tenants, managed by the server administrator (the admin token, not a tenant's token).

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, parse_json};
use crate::{ApiBody, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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
    if !flowgate_model::is_slug(&req.id) {
        return Err(ApiError::bad_request(format!(
            "invalid tenant id `{}`: expected 1–64 lower-case letters, digits, `-` or `_`",
            req.id
        ))
        .details(json!({ "field": "id" })));
    }
    let name = req.name.unwrap_or_else(|| req.id.clone());
    let store = st.engine.store();
    if !store.create_tenant(&req.id, &name, st.engine.clock().now_ms()).await? {
        return Err(ApiError::conflict(format!("tenant `{}` exists", req.id)));
    }
    let (token, token_id) = crate::api::tokens::create_for(&st, &req.id, "admin").await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": req.id, "name": name, "token": token, "tokenId": token_id })))
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
