//! Executions: list, inspect, retry from the failed step, replay, cancel.

use crate::auth::Caller;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::{AppState, present};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_store::{ExecutionQuery, Status};
use serde::Deserialize;
use serde_json::json;

/// Filters of `GET /v1/executions`.
#[derive(Deserialize)]
pub struct ListQuery {
    integration: Option<String>,
    flow: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /v1/executions?integration=&flow=&status=&limit=&cursor=`, newest first.
pub async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("unknown status `{s}`"))
                .details(json!({ "expected": Status::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>() }))
        })?),
    };
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| ApiError::bad_request("invalid cursor"))?),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let rows = st
        .engine
        .store()
        .executions(&ExecutionQuery {
            tenant: who.tenant_id,
            integration: q.integration,
            flow: q.flow,
            status,
            before,
            limit,
        })
        .await?;
    let next = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.seq.to_string())).flatten();
    Ok(axum::Json(json!({ "items": rows.iter().map(present::summary).collect::<Vec<_>>(), "nextCursor": next }))
        .into_response())
}

/// `GET /v1/executions/{id}`: status, trigger, every step attempt, the log.
pub async fn get(State(st): State<AppState>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let store = st.engine.store();
    let row = store
        .execution(Some(&who.tenant_id), &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no execution `{id}`")))?;
    let mut steps = store.journal(&id).await?;
    flowgate_store::fill_inputs(&mut steps, &row.trigger);
    let logs = store.logs(&id).await?;
    let mut v = present::detail(&row, &steps, &logs);
    v["statusUrl"] = json!(st.status_url(&id));
    Ok(axum::Json(v).into_response())
}

/// `POST /v1/executions/{id}/retry`: resume a failed (or cancelled) execution from the step
/// that failed; completed steps are not run again.
pub async fn retry(State(st): State<AppState>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let row = st.engine.retry(&who.tenant_id, &id).await.map_err(not_found_as(&id))?;
    Ok((StatusCode::ACCEPTED, axum::Json(present::summary(&row))).into_response())
}

/// `POST /v1/executions/{id}/replay`: a new execution from the start with the same trigger.
pub async fn replay(State(st): State<AppState>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let submitted = st.engine.replay(&who.tenant_id, &id).await.map_err(|e| match e {
        flowgate_engine::ReplayError::Store(e) => not_found_as(&id)(e),
        flowgate_engine::ReplayError::Submit(e) => ApiError::unavailable(e.to_string()),
    })?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "executionId": submitted.id, "replayOf": id, "statusUrl": st.status_url(&submitted.id) })),
    )
        .into_response())
}

/// `POST /v1/executions/{id}/cancel`.
pub async fn cancel(State(st): State<AppState>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let row = st.engine.cancel(&who.tenant_id, &id).await.map_err(not_found_as(&id))?;
    Ok(axum::Json(present::summary(&row)).into_response())
}

fn not_found_as(id: &str) -> impl FnOnce(flowgate_store::Error) -> ApiError + '_ {
    move |e| match e {
        flowgate_store::Error::NotFound => ApiError::not_found(format!("no execution `{id}`")),
        other => other.into(),
    }
}
