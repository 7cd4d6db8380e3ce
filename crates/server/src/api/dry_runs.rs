//! Dry runs (issue 20): `POST /v1/integrations/{slug}/dry-runs` starts one — a version (or a
//! document not applied yet) re-run against recorded executions with nothing sent —, and
//! `GET /v1/dry-runs/{id}` shows its progress and a page of its results.

use crate::api::executions::Instant;
use crate::auth::Caller;
use crate::error::ApiPath as Path;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::{ApiBody, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_engine::dry_runs::{DEFAULT_LIMIT, DryRunError, DryRunRequest};
use flowgate_model::Format;
use serde::Deserialize;
use serde_json::{Value, json};

/// Most results in one page.
const MAX_PAGE: u32 = 1_000;
/// Most executions per flow one request may ask for.
const MAX_LIMIT: u32 = 100_000;

/// Body of `POST /v1/integrations/{slug}/dry-runs`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartBody {
    /// A stored version's number (default: the newest, live or not).
    #[serde(default)]
    version: Option<i64>,
    /// A document not stored, instead of a version.
    #[serde(default)]
    source: Option<String>,
    /// The document's format (default: JSON when it starts with `{`, else YAML).
    #[serde(default)]
    format: Option<String>,
    /// One flow to try.
    #[serde(default)]
    flow: Option<String>,
    /// Flows to try (default: those that differ from the live version; all when none does).
    #[serde(default)]
    flows: Vec<String>,
    #[serde(default)]
    from: Option<Instant>,
    #[serde(default)]
    to: Option<Instant>,
    /// Only executions that ended so.
    #[serde(default)]
    status: Option<String>,
    /// The newest this many executions of each flow (default 500).
    #[serde(default)]
    limit: Option<u32>,
}

/// `POST /v1/integrations/{slug}/dry-runs`: starts a dry run; 202 with its id and how many
/// executions it selected.
pub async fn start(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(slug): Path<String>,
    ApiBody(body): ApiBody,
) -> ApiResult<Response> {
    let b: StartBody =
        if body.iter().all(u8::is_ascii_whitespace) { StartBody::default() } else { crate::error::parse_json(&body)? };
    let format = match b.format.as_deref() {
        None => match &b.source {
            Some(s) if s.trim_start().starts_with('{') => Format::Json,
            _ => Format::Yaml,
        },
        Some("yaml") => Format::Yaml,
        Some("json") => Format::Json,
        Some(other) => {
            return Err(ApiError::bad_request(format!("`format` must be yaml or json, not `{other}`"))
                .details(json!({ "field": "format" })));
        }
    };
    let limit = b.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!("`limit` must be between 1 and {MAX_LIMIT}"))
            .details(json!({ "field": "limit" })));
    }
    let mut flows = b.flows;
    if let Some(f) = b.flow.filter(|f| !f.trim().is_empty()) {
        flows.insert(0, f);
    }
    let req = DryRunRequest {
        version: b.version,
        source: b.source,
        format,
        flows,
        from: b.from.as_ref().map(|t| t.millis("from")).transpose()?,
        to: b.to.as_ref().map(|t| t.millis("to")).transpose()?,
        status: b.status,
        limit,
    };
    let started = st.engine.start_dry_run(&who.tenant_id, &slug, req).await.map_err(|e| match e {
        DryRunError::NotFound(m) => ApiError::not_found(m),
        DryRunError::Invalid(p) => ApiError::invalid_definition(p),
        DryRunError::Bad(m) => ApiError::bad_request(m),
        e @ DryRunError::Busy => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_dry_runs", e.to_string())
            .header(http::header::RETRY_AFTER, "10"),
        DryRunError::Store(e) => e.into(),
    })?;
    let r = &started.run;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "id": r.id,
            "integration": r.integration,
            "version": r.version,
            "flows": started.flows,
            "status": r.status,
            "total": r.total,
            "progressUrl": format!("/v1/dry-runs/{}", r.id),
        })),
    )
        .into_response())
}

/// `?outcome=&after=&limit=` of a dry run's results.
#[derive(Deserialize, Default)]
pub struct ResultsQuery {
    /// Only results with this outcome (`same`, `different`, `would_fail`, `unanswered`).
    #[serde(default)]
    outcome: Option<String>,
    /// Results after this one (`next` of the previous page).
    #[serde(default)]
    after: Option<i64>,
    /// Page size (default 100, at most 1000).
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /v1/dry-runs/{id}`: its progress and a page of its results.
pub async fn get(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ResultsQuery>,
) -> ApiResult<Response> {
    const OUTCOMES: [&str; 4] = ["same", "different", "would_fail", "unanswered"];
    let outcome = q.outcome.filter(|o| !o.is_empty());
    if let Some(o) = &outcome
        && !OUTCOMES.contains(&o.as_str())
    {
        return Err(ApiError::bad_request(format!("`outcome` must be one of: {}", OUTCOMES.join(", ")))
            .details(json!({ "field": "outcome" })));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let not_found = || ApiError::not_found(format!("no dry run `{id}`"));
    let run = st.engine.dry_run(&who.tenant_id, &id).await?.ok_or_else(not_found)?;
    let results = st
        .engine
        .dry_run_results(&who.tenant_id, &id, outcome.as_deref(), q.after.unwrap_or(0), limit)
        .await?
        .ok_or_else(not_found)?;
    let next = (results.len() == limit as usize).then(|| results.last().map(|r| r.n)).flatten();
    let results: Vec<Value> = results
        .into_iter()
        .map(|r| {
            let mut v = json!({ "n": r.n, "executionId": r.execution_id, "flow": r.flow, "outcome": r.outcome });
            if let Ok(Value::Object(detail)) = serde_json::from_str::<Value>(&r.detail) {
                for (k, d) in detail {
                    v[k] = d;
                }
            }
            v
        })
        .collect();
    Ok(axum::Json(json!({
        "id": run.id,
        "integration": run.integration,
        "version": run.version,
        "status": run.status,
        "request": serde_json::from_str::<Value>(&run.request).unwrap_or(Value::Null),
        "total": run.total,
        "done": run.done,
        "same": run.same,
        "different": run.different,
        "wouldFail": run.would_fail,
        "unanswered": run.unanswered,
        "error": run.error,
        "createdAt": flowgate_engine::clock::rfc3339(run.created_at),
        "finishedAt": run.finished_at.map(flowgate_engine::clock::rfc3339),
        "results": results,
        "next": next,
    }))
    .into_response())
}
