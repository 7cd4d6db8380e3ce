//! API tokens (stored hashed; shown once) and webhook API keys.

use crate::auth::{Caller, new_key};
use crate::error::ApiPath as Path;
use crate::error::{ApiError, ApiResult, parse_json};
use crate::{ApiBody, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

/// Body of `POST /v1/tokens`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for.
    name: String,
}

/// `POST /v1/tokens`: a new token for the caller's tenant; the token is in this answer only.
pub async fn create(State(st): State<AppState>, Caller(who): Caller, ApiBody(body): ApiBody) -> ApiResult<Response> {
    let req: CreateToken = parse_json(&body)?;
    if let Err(m) = flowgate_engine::tokens::check_token_name(&req.name) {
        return Err(ApiError::bad_request(m).details(json!({ "field": "name" })));
    }
    let (token, id) = create_for(&st, &who.tenant_id, &req.name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "id": id, "name": req.name, "token": token, "tenant": who.tenant_id })),
    )
        .into_response())
}

/// Creates a token for `tenant`; returns (token, id). The engine's, which the console shares.
pub async fn create_for(st: &AppState, tenant: &str, name: &str) -> ApiResult<(String, String)> {
    Ok(st.engine.create_token(tenant, name).await?)
}

/// `GET /v1/tokens`.
pub async fn list(State(st): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    let items: Vec<_> = st
        .engine
        .store()
        .tokens(&who.tenant_id)
        .await?
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "prefix": t.prefix,
                "createdAt": flowgate_engine::clock::rfc3339(t.created_at),
                "revokedAt": t.revoked_at.map(flowgate_engine::clock::rfc3339),
                "current": t.id == who.id,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// `DELETE /v1/tokens/{id}`.
pub async fn revoke(State(st): State<AppState>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    if !st.engine.store().revoke_token(&who.tenant_id, &id, st.engine.clock().now_ms()).await? {
        return Err(ApiError::not_found(format!("no active token `{id}`")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/keys`: a strong random key for a webhook's `apiKey` auth (not stored).
pub async fn generate_key(Caller(_): Caller) -> Response {
    axum::Json(json!({ "key": new_key() })).into_response()
}
