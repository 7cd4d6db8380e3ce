//! Executions: list, inspect, retry from the failed step, replay, cancel.

use crate::auth::Caller;
use crate::error::ApiPath as Path;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::{ApiBody, AppState, present};
use axum::extract::State;
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
    #[serde(rename = "triggerKind")]
    trigger_kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    search: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A time given in a query string: epoch milliseconds or RFC 3339; empty is none.
fn instant_param(v: Option<&str>, field: &str) -> ApiResult<Option<i64>> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => match t.parse::<i64>() {
            Ok(ms) => Ok(Some(ms)),
            Err(_) => Instant::Text(t.to_owned()).millis(field).map(Some),
        },
    }
}

/// A text filter; empty is none.
fn given(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `GET /v1/executions?integration=&flow=&status=&triggerKind=&from=&to=&search=&limit=&cursor=`,
/// newest first. `search` is an execution id or a delivery identity (a dedup key, e.g. the
/// `Idempotency-Key` a webhook came with, while the flow's dedup window remembers it).
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
            trigger_kind: given(q.trigger_kind),
            from: instant_param(q.from.as_deref(), "from")?,
            to: instant_param(q.to.as_deref(), "to")?,
            search: given(q.search),
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
    // What the view holds is about its texts twice (the rows, the answer): within the node's
    // memory budget like any event, so a burst of views of big executions waits its turn.
    let size = row.trigger.len()
        + row.output.as_ref().map_or(0, String::len)
        + steps
            .iter()
            .map(|s| s.input.as_ref().map_or(0, String::len) + s.output.as_ref().map_or(0, String::len))
            .sum::<usize>();
    let _room = st
        .engine
        .reserve(size * 2)
        .await
        .ok_or_else(|| ApiError::unavailable("too many large executions are being read; try again shortly"))?;
    flowgate_store::fill_inputs(&mut steps, &row.trigger);
    let logs = store.logs(&id).await?;
    let children = store.children(&who.tenant_id, &id).await?;
    let deliveries = st.engine.deliveries_of(&id).await?;
    let mut v = present::detail_view(&row, &steps, &logs);
    v.children = children.iter().map(present::summary).collect();
    v.deliveries = deliveries;
    v.status_url = st.status_url(&id);
    Ok(axum::Json(v).into_response())
}

/// `?format=` of `as-test`.
#[derive(Deserialize, Default)]
pub struct AsTestQuery {
    /// `yaml` or `json`; default: the format of the integration's document.
    #[serde(default)]
    format: Option<String>,
}

/// `GET /v1/executions/{id}/as-test?format=yaml|json`: the execution as a `tests:` case of
/// its flow (issue 20) — its trigger event, the side-effecting steps mocked with what they
/// recorded, the recorded outputs and answer as expectations; secrets stay markers. The answer
/// is `{executionId, integration, flow, version, format, case, test}`: `case` the text to paste
/// under the document's `tests:`, `test` the same case as JSON. An execution that has not
/// ended (or was cancelled) is a 409; one whose journal keeps no step outputs (`diagnostics:
/// errors|minimal`) a 422 `not_recorded`; one whose recording is over 16 MB a 422 `too_large`
/// (refused before it is parsed; the case is made off the async workers, within the memory
/// budget — 503 when there is no room).
pub async fn as_test(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AsTestQuery>,
) -> ApiResult<Response> {
    let format = match q.format.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("yaml" | "yml") => Some(flowgate_model::Format::Yaml),
        Some("json") => Some(flowgate_model::Format::Json),
        Some(other) => {
            return Err(ApiError::bad_request(format!("unknown format `{other}`: expected yaml or json"))
                .details(json!({ "expected": ["yaml", "json"] })));
        }
    };
    use flowgate_engine::as_test::AsTestError;
    let case = st.engine.execution_as_test(&who.tenant_id, &id, format).await.map_err(|e| match e {
        AsTestError::NotFinished { ref status, .. } => {
            ApiError::conflict(e.to_string()).details(json!({ "status": status }))
        }
        AsTestError::NotRecorded(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_recorded", m),
        AsTestError::Version { .. } => ApiError::conflict(e.to_string()),
        AsTestError::TooLarge { bytes, cap, .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "too_large", e.to_string())
                .details(json!({ "bytes": bytes, "limit": cap }))
        }
        AsTestError::Busy => ApiError::unavailable(e.to_string()),
        AsTestError::Crashed(m) => ApiError::internal(m),
        AsTestError::Store(e) => e.into(),
    })?;
    let case = case.ok_or_else(|| ApiError::not_found(format!("no execution `{id}`")))?;
    Ok(axum::Json(json!({
        "executionId": case.execution,
        "integration": case.integration,
        "flow": case.flow,
        "version": case.version,
        "format": match case.format { flowgate_model::Format::Yaml => "yaml", flowgate_model::Format::Json => "json" },
        "case": case.text,
        "test": case.case,
    }))
    .into_response())
}

/// `POST /v1/executions/{id}/retry`: resume a failed (or cancelled) execution from the step
/// that failed; completed steps are not run again.
pub async fn retry(State(st): State<AppState>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let row = st.engine.retry(&who.tenant_id, &id).await.map_err(not_found_as(&id))?;
    Ok((StatusCode::ACCEPTED, axum::Json(present::summary(&row))).into_response())
}

/// `?version=` of a replay.
#[derive(serde::Deserialize, Default)]
pub struct ReplayQuery {
    /// `latest` (default): the flow's current version; `original`: the one it ran on.
    #[serde(default)]
    version: Option<String>,
}

/// `POST /v1/executions/{id}/replay`: a new execution from the start with the same trigger.
pub async fn replay(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    crate::error::ApiQuery(q): crate::error::ApiQuery<ReplayQuery>,
) -> ApiResult<Response> {
    let original = match q.version.as_deref() {
        None | Some("latest") => false,
        Some("original") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!("unknown version `{other}`: expected latest or original")));
        }
    };
    let submitted = st.engine.replay_on(&who.tenant_id, &id, original).await.map_err(|e| match e {
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

/// `POST /v1/executions/{id}/skip`: lets the executions after a failed one that blocks its
/// order key run (the failed one stays failed and can still be retried).
pub async fn skip(State(st): State<AppState>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let row = st.engine.skip(&who.tenant_id, &id).await.map_err(not_found_as(&id))?;
    Ok(axum::Json(present::summary(&row)).into_response())
}

/// A time in a bulk filter: epoch milliseconds or RFC 3339.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Instant {
    /// Milliseconds since the Unix epoch.
    Millis(i64),
    /// RFC 3339, e.g. `2026-11-23T10:00:00Z`.
    Text(String),
}

impl Instant {
    pub(crate) fn millis(&self, field: &str) -> ApiResult<i64> {
        match self {
            Instant::Millis(ms) => Ok(*ms),
            Instant::Text(t) => time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| {
                    ApiError::bad_request(format!("`{field}` is not an RFC 3339 time: {t}"))
                        .details(json!({ "field": field }))
                }),
        }
    }
}

/// Body of the bulk retry and replay calls.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkRequest {
    #[serde(default)]
    integration: Option<String>,
    #[serde(default)]
    flow: Option<String>,
    /// Default: `failed` for retries, any for replays.
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    from: Option<Instant>,
    #[serde(default)]
    to: Option<Instant>,
    #[serde(default)]
    ids: Vec<String>,
    /// Only this trigger kind (`webhook`, `schedule`, `replay`, …).
    #[serde(default)]
    trigger_kind: Option<String>,
    /// An execution id or a delivery identity, as `GET /v1/executions?search=`.
    #[serde(default)]
    search: Option<String>,
    /// Only count what would be done.
    #[serde(default)]
    dry_run: bool,
}

async fn bulk(st: AppState, tenant: String, kind: flowgate_engine::BulkKind, body: &[u8]) -> ApiResult<Response> {
    let req: BulkRequest = crate::error::parse_json(body)?;
    let status = match (req.status, kind) {
        (Some(s), _) => Some(s),
        (None, flowgate_engine::BulkKind::Retry) => Some("failed".to_owned()),
        (None, flowgate_engine::BulkKind::Replay) => None,
    };
    if let Some(s) = &status
        && Status::parse(s).is_none()
    {
        return Err(ApiError::bad_request(format!("unknown status `{s}`")));
    }
    let filter = flowgate_store::ExecutionFilter {
        tenant,
        integration: req.integration,
        flow: req.flow,
        status,
        from: req.from.as_ref().map(|t| t.millis("from")).transpose()?,
        to: req.to.as_ref().map(|t| t.millis("to")).transpose()?,
        ids: req.ids,
        trigger_kind: given(req.trigger_kind),
        search: given(req.search),
        through_seq: None,
    };
    let started = st.engine.bulk(kind, filter, req.dry_run).await?;
    Ok(match started.job {
        None => axum::Json(json!({ "dryRun": true, "count": started.total })).into_response(),
        Some(job) => (StatusCode::ACCEPTED, axum::Json(present_job(&job))).into_response(),
    })
}

fn present_job(j: &flowgate_store::BulkJob) -> serde_json::Value {
    json!({
        "id": j.id,
        "kind": j.kind,
        "status": j.status,
        "total": j.total,
        "done": j.done,
        "failed": j.failed,
        "filter": serde_json::from_str::<serde_json::Value>(&j.filter).unwrap_or_default(),
        "createdAt": flowgate_engine::clock::rfc3339(j.created_at),
        "finishedAt": j.finished_at.map(flowgate_engine::clock::rfc3339),
        "progressUrl": format!("/v1/bulk/{}", j.id),
    })
}

/// `POST /v1/executions/retry`: resume every matching execution (default: the failed ones)
/// from its failed step, in the background. `{"dryRun": true}` only counts.
pub async fn bulk_retry(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiBody(body): ApiBody,
) -> ApiResult<Response> {
    bulk(st, who.tenant_id, flowgate_engine::BulkKind::Retry, &body).await
}

/// `POST /v1/executions/replay`: run every matching execution again from the start, in the
/// background. `{"dryRun": true}` only counts.
pub async fn bulk_replay(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiBody(body): ApiBody,
) -> ApiResult<Response> {
    bulk(st, who.tenant_id, flowgate_engine::BulkKind::Replay, &body).await
}

/// `GET /v1/bulk/{id}`: a bulk job's progress.
pub async fn bulk_job(State(st): State<AppState>, Caller(who): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let job = st
        .engine
        .store()
        .bulk_job(&who.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no bulk job `{id}`")))?;
    Ok(axum::Json(present_job(&job)).into_response())
}
