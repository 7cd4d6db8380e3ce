//! Deployments (an integration installed in the caller's tenant with config values) and the
//! integration's versions: list, read, diff, roll back.

use crate::auth::Caller;
use crate::error::ApiPath as Path;
use crate::error::{ApiError, ApiResult, parse_json};
use crate::{ApiBody, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowgate_engine::deploy::DeployError;
use serde::Deserialize;
use serde_json::{Map, Value, json};

fn deploy_error(slug: &str, e: DeployError) -> ApiError {
    match e {
        DeployError::NotFound => ApiError::not_found(format!("no integration `{slug}`")),
        DeployError::Invalid { problems, missing } => {
            let mut all: Vec<Value> =
                problems.iter().map(|(path, message)| json!({ "path": path, "message": message })).collect();
            all.extend(
                missing.iter().map(|m| json!({ "path": format!("config.{m}"), "message": "required, and not set" })),
            );
            let n = all.len();
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_deployment",
                format!("the deployment has {n} problem{}", if n == 1 { "" } else { "s" }),
            )
            .details(json!({ "problems": all, "missing": missing }))
        }
        DeployError::Store(e) => e.into(),
        DeployError::Submit(e) => ApiError::internal(e),
    }
}

/// Body of `PUT …/deployment`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PutDeployment {
    /// Config values by name (secrets included; `null` unsets one).
    #[serde(default)]
    config: Map<String, Value>,
}

/// `GET /v1/integrations/{slug}/deployment`.
pub async fn get(State(st): State<AppState>, Caller(who): Caller, Path(slug): Path<String>) -> ApiResult<Response> {
    let v = st.engine.deployment_view(&who.tenant_id, &slug).await.map_err(|e| deploy_error(&slug, e))?;
    Ok(axum::Json(v).into_response())
}

/// `PUT /v1/integrations/{slug}/deployment`: sets config values and deploys; 422 listing
/// every problem and missing value (nothing stored then).
pub async fn put(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(slug): Path<String>,
    ApiBody(body): ApiBody,
) -> ApiResult<Response> {
    let req: PutDeployment = parse_json(&body)?;
    st.engine.put_deployment(&who.tenant_id, &slug, &req.config).await.map_err(|e| deploy_error(&slug, e))?;
    let v = st.engine.deployment_view(&who.tenant_id, &slug).await.map_err(|e| deploy_error(&slug, e))?;
    Ok(axum::Json(v).into_response())
}

/// `DELETE /v1/integrations/{slug}/deployment`: undeploys (stored, not live; `undeploy`
/// flows run).
pub async fn delete(State(st): State<AppState>, Caller(who): Caller, Path(slug): Path<String>) -> ApiResult<Response> {
    st.engine.undeploy(&who.tenant_id, &slug).await.map_err(|e| deploy_error(&slug, e))?;
    let v = st.engine.deployment_view(&who.tenant_id, &slug).await.map_err(|e| deploy_error(&slug, e))?;
    Ok(axum::Json(v).into_response())
}

fn version_json(v: &flowgate_store::VersionRecord, current: i64) -> Value {
    json!({
        "version": v.version,
        "versionId": v.id,
        "hash": v.hash,
        "createdAt": flowgate_engine::clock::rfc3339(v.created_at),
        "current": v.id == current,
    })
}

async fn versions_of(st: &AppState, tenant: &str, slug: &str) -> ApiResult<(Vec<flowgate_store::VersionRecord>, i64)> {
    let current = st
        .engine
        .store()
        .integration(tenant, slug)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no integration `{slug}`")))?;
    Ok((st.engine.store().versions(tenant, slug).await?, current.id))
}

fn pick(versions: &[flowgate_store::VersionRecord], n: i64, slug: &str) -> ApiResult<flowgate_store::VersionRecord> {
    versions
        .iter()
        .find(|v| v.version == n)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("`{slug}` has no version {n}")))
}

/// `GET /v1/integrations/{slug}/versions`: newest first.
pub async fn list_versions(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(slug): Path<String>,
) -> ApiResult<Response> {
    let (versions, current) = versions_of(&st, &who.tenant_id, &slug).await?;
    let items: Vec<Value> = versions.iter().map(|v| version_json(v, current)).collect();
    Ok(axum::Json(json!({ "integration": slug, "items": items })).into_response())
}

/// `GET /v1/integrations/{slug}/versions/{n}`: one version with its source (credentials as
/// markers).
pub async fn get_version(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((slug, n)): Path<(String, i64)>,
) -> ApiResult<Response> {
    let (versions, current) = versions_of(&st, &who.tenant_id, &slug).await?;
    let v = pick(&versions, n, &slug)?;
    let mut out = version_json(&v, current);
    out["format"] = json!(v.format);
    out["source"] = json!(v.source);
    Ok(axum::Json(out).into_response())
}

/// `GET /v1/integrations/{slug}/versions/{a}/diff/{b}`: a unified diff of the two sources.
pub async fn diff(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((slug, a, b)): Path<(String, i64, i64)>,
) -> ApiResult<Response> {
    let (versions, _) = versions_of(&st, &who.tenant_id, &slug).await?;
    let (va, vb) = (pick(&versions, a, &slug)?, pick(&versions, b, &slug)?);
    // Bounded and off the async workers: two large sources that differ everywhere would
    // otherwise keep a worker busy for minutes (past the timeout the diff is still right,
    // only coarser).
    let (old, new, header) = (va.source.clone(), vb.source.clone(), (format!("{slug} v{a}"), format!("{slug} v{b}")));
    let (text, added, removed) = tokio::task::spawn_blocking(move || {
        let diff = similar::TextDiff::configure().timeout(std::time::Duration::from_millis(300)).diff_lines(&old, &new);
        let text = diff.unified_diff().context_radius(3).header(&header.0, &header.1).to_string();
        let (mut added, mut removed) = (0, 0);
        for change in diff.iter_all_changes() {
            match change.tag() {
                similar::ChangeTag::Insert => added += 1,
                similar::ChangeTag::Delete => removed += 1,
                similar::ChangeTag::Equal => {}
            }
        }
        (text, added, removed)
    })
    .await
    .map_err(|e| ApiError::internal(format!("diff: {e}")))?;
    Ok(axum::Json(json!({ "integration": slug, "from": a, "to": b, "added": added, "removed": removed, "diff": text }))
        .into_response())
}

/// `POST /v1/integrations/{slug}/versions/{n}/rollback`: applies version `n` again, as a new
/// version (history stays immutable); its deployment is upgraded as by any apply.
pub async fn rollback(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((slug, n)): Path<(String, i64)>,
) -> ApiResult<Response> {
    let (versions, _) = versions_of(&st, &who.tenant_id, &slug).await?;
    let v = pick(&versions, n, &slug)?;
    let (outcome, ci) = st.engine.rollback(&who.tenant_id, &v).await.map_err(|e| match e {
        flowgate_engine::ApplyError::Invalid(p) => ApiError::invalid_definition(p),
        flowgate_engine::ApplyError::Conflict(m) => ApiError::conflict(m),
        flowgate_engine::ApplyError::Store(e) => e.into(),
    })?;
    let created = matches!(outcome, flowgate_store::PutOutcome::Created(_));
    Ok((
        if created { StatusCode::CREATED } else { StatusCode::OK },
        axum::Json(json!({
            "integration": slug,
            "version": ci.record.version,
            "rolledBackTo": n,
            "created": created,
            "deployment": { "deployed": ci.deployed, "live": ci.live(), "missing": ci.missing },
        })),
    )
        .into_response())
}
