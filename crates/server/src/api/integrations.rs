//! Integrations and flows: apply, read, delete, validate, run.

use crate::auth::Caller;
use crate::error::ApiPath as Path;
use crate::error::{ApiError, ApiQuery, ApiResult, parse_json};
use crate::{ApiBody, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flowgate_engine::{ApplyError, CompiledIntegration, Engine, FlowTrigger, SyncOutcome, Wait};
use flowgate_model::Format;
use flowgate_store::{FlowKey, PutOutcome};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The format of a definition body: from `Content-Type`, else sniffed.
pub fn body_format(headers: &HeaderMap, body: &str) -> Format {
    let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if ct.contains("yaml") {
        Format::Yaml
    } else if ct.contains("json") {
        Format::Json
    } else {
        Format::sniff(body)
    }
}

fn text(body: &[u8]) -> ApiResult<&str> {
    std::str::from_utf8(body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "the definition is not UTF-8 text"))
}

fn flows_json(st: &AppState, ci: &CompiledIntegration) -> Value {
    ci.flows
        .values()
        .map(|f| {
            json!({
                "flow": f.slug,
                "name": f.name,
                "active": st.engine.is_active(f),
                "trigger": f.trigger.kind(),
                "webhookUrl": f.webhook().map(|w| st.webhook_url(&f.tenant, &w.path)),
                "inboundEmailAddress": f.email_address(st.engine.registry().mail_domain()),
            })
        })
        .collect()
}

fn integration_json(st: &AppState, ci: &CompiledIntegration) -> Value {
    json!({
        "integration": ci.record.slug,
        "name": ci.definition.name,
        "description": ci.definition.description,
        "version": ci.record.version,
        "versionId": ci.record.id,
        "hash": ci.record.hash,
        "createdAt": flowgate_engine::clock::rfc3339(ci.record.created_at),
        "flows": flows_json(st, ci),
        "deployment": { "deployed": ci.deployed, "live": ci.live(), "missing": ci.missing },
    })
}

/// `PUT /v1/integrations/{slug}`: a YAML or JSON definition → the stored version (201 when
/// new, 200 when unchanged).
pub async fn put(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(slug): Path<String>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> ApiResult<Response> {
    let text = text(&body)?;
    let format = body_format(&headers, text);
    // Only the slug is read here; `apply` checks the document (once the markers of a
    // document read back from the API have their credentials again).
    let named = flowgate_model::source::parse(text, format)
        .ok()
        .and_then(|d| d.value.get("integration").and_then(Value::as_str).map(str::to_owned));
    if let Some(named) = named
        && named != slug
    {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", format!(
            "the document defines integration `{named}` but was sent to /v1/integrations/{slug}"
        ))
        .details(json!({ "problems": [{ "path": "integration", "message": format!("expected `{slug}` (the URL's slug)") }] })));
    }
    let (outcome, ci) = st.engine.apply(&who.tenant_id, text, format).await.map_err(|e| match e {
        ApplyError::Invalid(p) => ApiError::invalid_definition(p),
        ApplyError::Conflict(m) => ApiError::conflict(m),
        ApplyError::Store(e) => e.into(),
    })?;
    let created = matches!(outcome, PutOutcome::Created(_));
    let mut v = integration_json(&st, &ci);
    v["created"] = json!(created);
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(v)).into_response())
}

/// `GET /v1/integrations`.
pub async fn list(State(st): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    let mut items = Vec::new();
    for r in st.engine.store().integrations(&who.tenant_id).await? {
        if let Some(ci) = st.engine.integration(&who.tenant_id, &r.slug).await? {
            items.push(integration_json(&st, &ci));
        }
    }
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// `GET /v1/integrations/{slug}`: the current version, with its source.
pub async fn get(State(st): State<AppState>, Caller(who): Caller, Path(slug): Path<String>) -> ApiResult<Response> {
    let ci = st
        .engine
        .integration(&who.tenant_id, &slug)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no integration `{slug}`")))?;
    let mut v = integration_json(&st, &ci);
    v["format"] = json!(ci.record.format);
    v["source"] = json!(ci.record.source);
    v["document"] = serde_json::from_str(&ci.record.document).unwrap_or(Value::Null);
    Ok(axum::Json(v).into_response())
}

/// `DELETE /v1/integrations/{slug}`.
pub async fn delete(State(st): State<AppState>, Caller(who): Caller, Path(slug): Path<String>) -> ApiResult<Response> {
    if !st.engine.delete(&who.tenant_id, &slug).await? {
        return Err(ApiError::not_found(format!("no integration `{slug}`")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/validate`: checks a definition without storing it.
pub async fn validate(
    State(st): State<AppState>,
    Caller(_): Caller,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> ApiResult<Response> {
    let text = text(&body)?;
    let draft = Engine::validate_off_thread(text.to_owned(), body_format(&headers, text))
        .await
        .map_err(ApiError::invalid_definition)?;
    let flows: Vec<Value> = draft
        .definition
        .flows
        .iter()
        .map(|f| json!({ "flow": f.flow, "name": f.name, "trigger": f.trigger.kind(), "steps": f.steps.len() }))
        .collect();
    let _ = &st;
    Ok(axum::Json(json!({ "valid": true, "integration": draft.definition.integration, "flows": flows }))
        .into_response())
}

/// `GET /v1/integrations/{slug}/flows/{flow}`: the flow, its webhook URL and its last run.
pub async fn flow(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((slug, flow)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ci = st
        .engine
        .integration(&who.tenant_id, &slug)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no integration `{slug}`")))?;
    let f = ci.flows.get(&flow).ok_or_else(|| ApiError::not_found(format!("no flow `{flow}` in `{slug}`")))?;
    let def = ci.definition.flow(&flow);
    let last = st.engine.store().last_run(FlowKey { tenant: &who.tenant_id, integration: &slug, flow: &flow }).await?;
    let (last_at, last_status, last_log) = match &last {
        Some(r) => {
            let status = match r.status() {
                flowgate_store::Status::Succeeded => "success",
                flowgate_store::Status::Filtered => "skipped",
                _ => "error",
            };
            let mut lines: Vec<String> = st
                .engine
                .store()
                .logs(&r.id)
                .await?
                .iter()
                .map(|l| format!("{} [{}] {}", flowgate_engine::clock::rfc3339(l.at), l.level, l.message))
                .collect();
            if let Some(e) = r.error.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()) {
                lines.push(format!(
                    "error in step {}: {}",
                    r.failed_step.as_deref().unwrap_or("-"),
                    e["message"].as_str().unwrap_or("")
                ));
            }
            (
                json!(flowgate_engine::clock::rfc3339(r.finished_at.unwrap_or(r.created_at))),
                json!(status),
                json!(lines.join("\n")),
            )
        }
        None => (Value::Null, Value::Null, Value::Null),
    };
    let trigger = match (&f.trigger, def.map(|d| &d.trigger)) {
        (FlowTrigger::Webhook(w), _) => json!({
            "kind": "webhook",
            "path": w.path,
            "methods": w.methods,
            "auth": auth_mode(&w.auth),
            "verify": w.verify.as_ref().map(|v| v.describe()),
            "respond": { "mode": w.respond.mode, "timeout": w.respond.timeout },
        }),
        (FlowTrigger::Manual, _) => json!({ "kind": "manual" }),
        (FlowTrigger::Deploy, _) => json!({ "kind": "deploy" }),
        (FlowTrigger::Undeploy, _) => json!({ "kind": "undeploy" }),
        (FlowTrigger::Schedule(sc), _) => json!({
            "kind": "schedule",
            "schedule": sc.schedule.describe(),
            "timezone": sc.schedule.timezone(),
            "missed": sc.missed,
            "maxMissed": sc.max_missed,
        }),
        (FlowTrigger::Email(e), _) => json!({
            "kind": "email",
            "address": f.email_address(st.engine.registry().mail_domain()),
            "allowFrom": e.allow_from,
        }),
        (FlowTrigger::Poll(p), _) => json!({
            "kind": "poll",
            "schedule": p.schedule.describe(),
            "timezone": p.schedule.timezone(),
            "firstRun": p.first_run,
            "maxPages": p.max_pages,
        }),
        (FlowTrigger::Broker(b), _) => b.describe(),
    };
    let active = st.engine.is_active(f);
    // The next slots a schedule or poll fires at (none while the flow is off).
    let next_runs: Option<Vec<String>> = f.trigger.schedule().map(|sc| {
        if active {
            sc.upcoming(st.engine.clock().now_ms(), 5).into_iter().map(flowgate_engine::clock::rfc3339).collect()
        } else {
            Vec::new()
        }
    });
    let state = match f.trigger.schedule() {
        Some(_) => st.engine.trigger_state(FlowKey { tenant: &who.tenant_id, integration: &slug, flow: &flow }).await?,
        None => None,
    };
    Ok(axum::Json(json!({
        "integration": slug,
        "flow": f.slug,
        "name": f.name,
        "description": def.and_then(|d| d.description.clone()),
        "active": active,
        "activeInDefinition": f.active,
        "version": f.version,
        "trigger": trigger,
        "nextRuns": next_runs,
        "triggerState": state,
        "inboundEmailAddress": f.email_address(st.engine.registry().mail_domain()),
        "steps": def.map(|d| d.steps.iter().map(|s| json!({ "id": s.id(), "kind": flowgate_model::StepKind::kind(&s.kind) })).collect::<Vec<_>>()),
        "webhookUrl": f.webhook().map(|w| st.webhook_url(&f.tenant, &w.path)),
        "lastRunAt": last_at,
        "lastRunStatus": last_status,
        "lastRunLog": last_log,
        "lastExecutionId": last.as_ref().map(|r| r.id.clone()),
        "ordered": f.policy.order.is_some(),
        "concurrency": f.policy.concurrency,
        // Order keys held up by a failed execution (retry or skip it to release them).
        "blocked": st.engine.store().blocked(FlowKey { tenant: &who.tenant_id, integration: &slug, flow: &flow }).await?.iter().map(|r| json!({
            "executionId": r.id,
            "orderKey": r.order_key,
            "failedStep": r.failed_step,
            "finishedAt": r.finished_at.map(flowgate_engine::clock::rfc3339),
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// 409: the integration is stored but not live (undeployed, or required values unset).
pub fn not_live(ci: &CompiledIntegration) -> ApiError {
    let why = if !ci.deployed {
        "it is undeployed (PUT …/deployment deploys it)".to_owned()
    } else {
        format!("required config values are not set: {}", ci.missing.join(", "))
    };
    ApiError::new(StatusCode::CONFLICT, "not_live", format!("integration `{}` is not live: {why}", ci.record.slug))
        .details(json!({ "deployed": ci.deployed, "missing": ci.missing }))
}

fn auth_mode(a: &flowgate_engine::AuthSpec) -> &'static str {
    match a {
        flowgate_engine::AuthSpec::None => "none",
        flowgate_engine::AuthSpec::Header { .. } => "header",
        flowgate_engine::AuthSpec::Bearer { .. } => "bearer",
        flowgate_engine::AuthSpec::Basic { .. } => "basic",
        flowgate_engine::AuthSpec::ApiKey { .. } => "apiKey",
    }
}

/// Body of a manual or test run.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// `$trigger.body`.
    #[serde(default)]
    pub body: Value,
    /// `$trigger.headers`.
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// `$trigger.query`.
    #[serde(default)]
    pub query: Map<String, Value>,
}

/// `?wait=true`.
#[derive(Deserialize, Default)]
pub struct RunQuery {
    #[serde(default)]
    wait: bool,
    /// Seconds to wait at most (default 30, at most 300).
    #[serde(default)]
    timeout: Option<u64>,
}

/// `POST /v1/integrations/{slug}/flows/{flow}/run`: a manual run (manual flows) or a test run
/// (any other flow), with an optional payload. With `?wait=true` the answer is the result.
pub async fn run(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((slug, flow)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<RunQuery>,
    ApiBody(body): ApiBody,
) -> ApiResult<Response> {
    let req: RunRequest = parse_json(&body)?;
    let ci = st
        .engine
        .integration(&who.tenant_id, &slug)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no integration `{slug}`")))?;
    let f = ci.flows.get(&flow).ok_or_else(|| ApiError::not_found(format!("no flow `{flow}` in `{slug}`")))?.clone();
    if !ci.live() {
        return Err(not_live(&ci));
    }
    // The API never echoes a secret (issue 13): what the run answers is shown redacted.
    let redactor = f.redactor.clone();
    let wait = if q.wait { Wait::End } else { Wait::No };
    let submitted =
        st.engine.run_by_hand(f, req.body, req.headers, req.query, wait).await.map_err(crate::hooks::submit_error)?;
    let status_url = st.status_url(&submitted.id);
    let accepted = || {
        (StatusCode::ACCEPTED, axum::Json(json!({ "executionId": submitted.id, "statusUrl": status_url })))
            .into_response()
    };
    let Some(waiter) = submitted.waiter else { return Ok(accepted()) };
    let timeout = std::time::Duration::from_secs(q.timeout.unwrap_or(30).min(300));
    match tokio::time::timeout(timeout, waiter).await {
        Ok(Ok(SyncOutcome::Finished { status, output, error, response })) => {
            Ok(axum::Json(redactor.redact_value(&json!({
                "executionId": submitted.id,
                "status": status.as_str(),
                "output": output,
                "response": response,
                "error": error,
            })))
            .into_response())
        }
        _ => {
            st.engine.forget_waiter(&submitted.id);
            Ok(accepted())
        }
    }
}

/// `POST /v1/integrations/{slug}/flows/{flow}/activate` and `…/deactivate`: switches a flow on
/// or off on every node at once (it wins over the document's `active`).
pub async fn switch(st: AppState, key: FlowKey<'_>, active: bool) -> ApiResult<Response> {
    let FlowKey { integration: slug, flow, .. } = key;
    st.engine.set_active(key, active).await.map_err(|e| match e {
        flowgate_store::Error::NotFound => ApiError::not_found(format!("no flow `{flow}` in `{slug}`")),
        other => other.into(),
    })?;
    Ok(axum::Json(json!({ "integration": slug, "flow": flow, "active": active })).into_response())
}

/// `POST /v1/integrations/{slug}/flows/{flow}/activate`.
pub async fn activate(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((slug, flow)): Path<(String, String)>,
) -> ApiResult<Response> {
    switch(st, FlowKey { tenant: &who.tenant_id, integration: &slug, flow: &flow }, true).await
}

/// `POST /v1/integrations/{slug}/flows/{flow}/deactivate`.
pub async fn deactivate(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((slug, flow)): Path<(String, String)>,
) -> ApiResult<Response> {
    switch(st, FlowKey { tenant: &who.tenant_id, integration: &slug, flow: &flow }, false).await
}

/// The flow `flow` of `slug`, if it has a schedule or poll trigger.
async fn timed_flow(st: &AppState, key: FlowKey<'_>) -> ApiResult<()> {
    let FlowKey { tenant, integration: slug, flow } = key;
    let ci = st
        .engine
        .integration(tenant, slug)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no integration `{slug}`")))?;
    let f = ci.flows.get(flow).ok_or_else(|| ApiError::not_found(format!("no flow `{flow}` in `{slug}`")))?;
    if f.trigger.schedule().is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_trigger_state",
            format!(
                "flow `{flow}` has a {} trigger, which keeps no state (only schedule and poll do)",
                f.trigger.kind()
            ),
        ));
    }
    Ok(())
}

/// `GET /v1/integrations/{slug}/flows/{flow}/state`: what a schedule or poll keeps (its last
/// slot, a poll's cursor, counts and last error).
pub async fn trigger_state(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((slug, flow)): Path<(String, String)>,
) -> ApiResult<Response> {
    let key = FlowKey { tenant: &who.tenant_id, integration: &slug, flow: &flow };
    timed_flow(&st, key).await?;
    let state = st.engine.trigger_state(key).await?;
    Ok(axum::Json(json!({ "integration": slug, "flow": flow, "state": state })).into_response())
}

/// `DELETE /v1/integrations/{slug}/flows/{flow}/state`: forgets it; a poll starts over as on
/// its first run.
pub async fn reset_trigger_state(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path((slug, flow)): Path<(String, String)>,
) -> ApiResult<Response> {
    let key = FlowKey { tenant: &who.tenant_id, integration: &slug, flow: &flow };
    timed_flow(&st, key).await?;
    let existed = st.engine.reset_trigger_state(key).await?;
    Ok(axum::Json(json!({ "integration": slug, "flow": flow, "reset": existed })).into_response())
}

/// `?name=` of a test run.
#[derive(Deserialize, Default)]
pub struct TestQuery {
    /// Only this test case.
    #[serde(default)]
    name: Option<String>,
}

/// `POST /v1/integrations/{slug}/test`: runs the integration's test cases (`tests:`) with its
/// deployment's config values, on a throwaway engine: nothing is recorded in the tenant and
/// mocked steps are not run.
pub async fn test(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(slug): Path<String>,
    ApiQuery(q): ApiQuery<TestQuery>,
) -> ApiResult<Response> {
    let report = st
        .engine
        .test_integration(&who.tenant_id, &slug, q.name.as_deref())
        .await
        .map_err(ApiError::invalid_definition)?
        .ok_or_else(|| ApiError::not_found(format!("no integration `{slug}`")))?;
    Ok(axum::Json(json!({ "integration": slug, "passed": report.passed, "results": report.results })).into_response())
}
