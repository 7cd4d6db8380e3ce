//! *Try it*, `/console/integrations/{slug}/flows/{flow}/try`: a payload (body, headers, query)
//! prefilled from the flow's last execution, and Run, which starts the flow through the
//! engine's [`run_by_hand`](flowgate_engine::Engine::run_by_hand) as
//! `POST /v1/integrations/{slug}/flows/{flow}/run` does (a `test` execution; `manual` for a
//! manual flow). `…/try/{id}` answers the execution's steps so far (each one's input,
//! output, timing and error), which the page polls until the execution ends; without the
//! script, Run leads to the execution's page.

use super::{json, read_form, seg, unavailable, wants_json};
use crate::Console;
use crate::layout::{self, Nav};
use crate::session::{self, Session};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use flowgate_engine::{CompiledFlow, CompiledIntegration, SubmitError, Wait};
use flowgate_store::{ExecutionRow, FlowKey, Status, StepRecord};
use http::{HeaderMap, StatusCode};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Headers of a past request not worth sending again (the transport's own).
const TRANSPORT: &[&str] = &["content-length", "host", "connection", "transfer-encoding", "accept-encoding"];

/// The payload form.
#[derive(Deserialize, Default)]
pub(crate) struct TryForm {
    csrf: Option<String>,
    #[serde(default)]
    body: String,
    /// `json` (default) or `text`.
    #[serde(default)]
    body_kind: String,
    #[serde(default)]
    headers: String,
    #[serde(default)]
    query: String,
}

/// What is wrong with a payload, by field.
#[derive(Default)]
struct Errors {
    body: Option<String>,
    headers: Option<String>,
    query: Option<String>,
    run: Option<String>,
}

impl Errors {
    fn any(&self) -> bool {
        self.body.is_some() || self.headers.is_some() || self.query.is_some() || self.run.is_some()
    }

    fn to_json(&self) -> Value {
        json!({ "body": self.body, "headers": self.headers, "query": self.query, "run": self.run })
    }
}

/// The integration and flow of the URL, the tenant's; `Err` is the page to answer.
async fn find(
    c: &Console,
    tenant: &str,
    slug: &str,
    flow: &str,
) -> Result<(Arc<CompiledIntegration>, Arc<CompiledFlow>), Response> {
    match c.engine().integration(tenant, slug).await {
        Ok(Some(ci)) => match ci.flows.get(flow).cloned() {
            Some(f) => Ok((ci, f)),
            None => Err(layout::not_found("There is no such flow.")),
        },
        // Another tenant's integration is as absent as one that never existed.
        Ok(None) => Err(layout::not_found("There is no such integration.")),
        Err(e) => Err(unavailable(&e, "cannot read an integration")),
    }
}

/// `GET /console/integrations/{slug}/flows/{flow}/try`.
pub(crate) async fn page(State(c): State<Console>, s: Session, Path((slug, flow)): Path<(String, String)>) -> Response {
    let (ci, f) = match find(&c, &s.tenant, &slug, &flow).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let last = match c.engine().store().last_run(FlowKey { tenant: &s.tenant, integration: &slug, flow: &flow }).await {
        Ok(last) => last,
        Err(e) => return unavailable(&e, "cannot read the last execution"),
    };
    let form = last.as_ref().map(prefill).unwrap_or_default();
    render(&s, StatusCode::OK, &ci, &f, &form, &Errors::default(), last.as_ref().map(|r| r.id.as_str()))
}

/// The form filled with a past execution's trigger event.
fn prefill(row: &ExecutionRow) -> TryForm {
    let event: Value = serde_json::from_str(&row.trigger).unwrap_or(Value::Null);
    let (body, body_kind) = match event.get("body") {
        None | Some(Value::Null) => (String::new(), "json"),
        Some(Value::String(text)) => (text.clone(), "text"),
        Some(v) => (serde_json::to_string_pretty(v).unwrap_or_default(), "json"),
    };
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let headers = event
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .filter(|(k, _)| !TRANSPORT.contains(&k.to_ascii_lowercase().as_str()))
                .map(|(k, v)| match v {
                    Value::Array(items) => format!("{k}: {}", items.iter().map(scalar).collect::<Vec<_>>().join(", ")),
                    other => format!("{k}: {}", scalar(other)),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let query = event
        .get("query")
        .and_then(Value::as_object)
        .map(|q| {
            let pairs: Vec<(String, String)> = q.iter().map(|(k, v)| (k.clone(), scalar(v))).collect();
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        })
        .unwrap_or_default();
    TryForm { csrf: None, body, body_kind: body_kind.to_owned(), headers, query }
}

/// What a run is started with (`$trigger.body`, `.headers`, `.query`).
struct Payload {
    body: Value,
    headers: Map<String, Value>,
    query: Map<String, Value>,
}

/// The payload of a form, or what is wrong with each of its fields.
fn parse(form: &TryForm) -> Result<Payload, Errors> {
    let mut errors = Errors::default();
    let body = if form.body_kind == "text" {
        Value::String(form.body.clone())
    } else if form.body.trim().is_empty() {
        Value::Null
    } else {
        match serde_json::from_str::<Value>(&form.body) {
            Ok(v) => v,
            Err(e) => {
                errors.body =
                    Some(format!("The body is not valid JSON: {e}. Fix it, or choose \"text\" to send it as it is."));
                Value::Null
            }
        }
    };
    let mut headers = Map::new();
    for (i, line) in form.headers.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = line.split_once(':').and_then(|(name, value)| {
            let name = name.trim();
            http::HeaderName::from_bytes(name.as_bytes()).ok().map(|_| (name.to_ascii_lowercase(), value.trim()))
        });
        match parsed {
            Some((name, value)) => {
                let joined = match headers.get(&name).and_then(Value::as_str) {
                    Some(before) => format!("{before}, {value}"),
                    None => value.to_owned(),
                };
                headers.insert(name, Value::String(joined));
            }
            None => {
                errors.headers = Some(format!("Header line {} is not `Name: value` with a valid header name.", i + 1));
                break;
            }
        }
    }
    let mut query = Map::new();
    match serde_urlencoded::from_str::<Vec<(String, String)>>(form.query.trim().trim_start_matches('?')) {
        Ok(pairs) => {
            for (k, v) in pairs {
                if k.is_empty() {
                    errors.query = Some("The query has a parameter without a name; write it as a=1&b=2.".into());
                    break;
                }
                query.insert(k, Value::String(v));
            }
        }
        Err(_) => errors.query = Some("The query could not be read; write it as a=1&b=2.".into()),
    }
    if errors.any() { Err(errors) } else { Ok(Payload { body, headers, query }) }
}

/// Why a run could not start, in the API's words.
fn not_started(ci: &CompiledIntegration, e: Option<SubmitError>) -> String {
    match e {
        None if !ci.deployed => {
            format!("Integration `{}` is not live: it is undeployed (deploy it to run its flows).", ci.record.slug)
        }
        None => format!(
            "Integration `{}` is not live: required config values are not set: {}.",
            ci.record.slug,
            ci.missing.join(", ")
        ),
        Some(SubmitError::Expression(m)) => {
            // As the API: the evaluation's message may quote config values; the log has it.
            tracing::warn!(error = %m, "A test run was refused: its delivery key could not be computed.");
            "The event was refused: the flow's orderBy or dedupKey expression cannot be computed on it.".into()
        }
        Some(e) => format!("The run could not start: {e}."),
    }
}

/// `POST /console/integrations/{slug}/flows/{flow}/try`.
pub(crate) async fn run(
    State(c): State<Console>,
    s: Session,
    Path((slug, flow)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (form, _room): (TryForm, _) = match read_form(&c, &headers, body).await {
        Ok(f) => f,
        Err(refused) => return refused,
    };
    if let Some(refused) = session::check_csrf(&s, form.csrf.as_deref()) {
        return refused;
    }
    let (ci, f) = match find(&c, &s.tenant, &slug, &flow).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let json_wanted = wants_json(&headers);
    let refuse = |errors: Errors| {
        if json_wanted {
            json(StatusCode::UNPROCESSABLE_ENTITY, json!({ "errors": errors.to_json() }))
        } else {
            render(&s, StatusCode::UNPROCESSABLE_ENTITY, &ci, &f, &form, &errors, None)
        }
    };
    let payload = match parse(&form) {
        Ok(p) => p,
        Err(errors) => return refuse(errors),
    };
    if !ci.live() {
        return refuse(Errors { run: Some(not_started(&ci, None)), ..Errors::default() });
    }
    let started = c.engine().run_by_hand(f.clone(), payload.body, payload.headers, payload.query, Wait::No).await;
    let id = match started {
        Ok(sub) => sub.id,
        Err(e) => return refuse(Errors { run: Some(not_started(&ci, Some(e))), ..Errors::default() }),
    };
    if json_wanted {
        json(
            StatusCode::ACCEPTED,
            json!({
                "executionId": id,
                "stepsUrl": format!("/console/integrations/{}/flows/{}/try/{}", seg(&slug), seg(&flow), seg(&id)),
                "executionUrl": format!("/console/executions/{}", seg(&id)),
            }),
        )
    } else {
        Redirect::to(&format!("/console/executions/{}", seg(&id))).into_response()
    }
}

/// A stored JSON text as a value (as a string when it does not parse).
fn value(text: &Option<String>) -> Value {
    match text {
        None => Value::Null,
        Some(t) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.clone())),
    }
}

/// `GET /console/integrations/{slug}/flows/{flow}/try/{id}`: the execution's status and its
/// steps so far, as data and as the page's markup.
pub(crate) async fn steps(
    State(c): State<Console>,
    s: Session,
    Path((slug, flow, id)): Path<(String, String, String)>,
) -> Response {
    let store = c.engine().store();
    let row = match store.execution(Some(&s.tenant), &id).await {
        Ok(Some(row)) if row.integration == slug && row.flow == flow => row,
        Ok(_) => return json(StatusCode::NOT_FOUND, json!({ "error": "no such execution" })),
        Err(e) => return unavailable(&e, "cannot read an execution"),
    };
    let mut journal = match store.journal(&id).await {
        Ok(j) => j,
        Err(e) => return unavailable(&e, "cannot read a journal"),
    };
    // As the API and the execution page: within the node's memory budget.
    let size = row.trigger.len()
        + journal
            .iter()
            .map(|s| s.input.as_ref().map_or(0, String::len) + s.output.as_ref().map_or(0, String::len))
            .sum::<usize>();
    let Some(_room) = c.engine().reserve(size * 3).await else {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": "too many large executions are being read; try again shortly" }),
        );
    };
    flowgate_store::fill_inputs(&mut journal, &row.trigger);
    let done = Status::parse(&row.status).is_some_and(Status::is_final);
    let steps: Vec<Value> = journal
        .iter()
        .map(|st| {
            json!({
                "step": st.step_id,
                "status": st.status,
                "round": st.round,
                "attempt": st.attempt,
                "durationMs": st.finished_at - st.started_at,
                "input": value(&st.input),
                "output": value(&st.output),
                "error": value(&st.error),
            })
        })
        .collect();
    json(
        StatusCode::OK,
        json!({
            "executionId": row.id,
            "status": row.status,
            "done": done,
            "steps": steps,
            "html": result(&row, &journal).into_string(),
        }),
    )
}

/// The run's status and steps, as the page shows them.
fn result(row: &ExecutionRow, journal: &[StepRecord]) -> Markup {
    let error: Option<Value> = row.error.as_deref().and_then(|e| serde_json::from_str(e).ok());
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    html! {
        div.try-head {
            "Execution " a.id href=(format!("/console/executions/{}", seg(&row.id))) { (row.id) } " "
            span #try-status { (layout::status_badge(&row.status)) }
            @if let (Some(a), Some(b)) = (row.started_at, row.finished_at) { " " span.sub { (layout::duration(b - a)) } }
        }
        @if let Some(e) = &error {
            p.error role="alert" {
                @if let Some(code) = text(e, "code") { code { (code) } " " }
                @if let Some(step) = text(e, "step").or_else(|| row.failed_step.clone()) { "at step " strong { (step) } ": " }
                (text(e, "message").unwrap_or_default())
            }
        }
        @if journal.is_empty() { p.empty { "No step has finished yet." } }
        ol.steps #try-steps {
            @for st in journal {
                li.step data-step=(st.step_id) data-status=(st.status) {
                    div.step-head {
                        strong.step-id { (st.step_id) } " " (layout::status_badge(&st.status))
                        span.sub { " attempt " (st.attempt) ", " (layout::duration(st.finished_at - st.started_at)) }
                    }
                    @if let Some(i) = &st.input { details.step-input { summary { "Input" } (layout::json_block(i)) } }
                    @if let Some(o) = &st.output { details.step-output open { summary { "Output" } (layout::json_block(o)) } }
                    @if let Some(e) = &st.error { details.step-error open { summary { "Error" } (layout::json_block(e)) } }
                }
            }
        }
    }
}

fn render(
    s: &Session,
    status: StatusCode,
    ci: &CompiledIntegration,
    f: &CompiledFlow,
    form: &TryForm,
    errors: &Errors,
    last: Option<&str>,
) -> Response {
    let slug = &ci.record.slug;
    let action = format!("/console/integrations/{}/flows/{}/try", seg(slug), seg(&f.slug));
    let field_error = |id: &str, e: &Option<String>| {
        html! { @if let Some(m) = e { p.field-error id=(id) role="alert" { span aria-hidden="true" { "✗ " } (m) } } }
    };
    let text_body = form.body_kind == "text";
    let body = html! {
        p.crumbs {
            a href="/console/integrations" { "← Integrations" } " / "
            a href=(format!("/console/integrations/{}", seg(slug))) { (slug) } " / "
            a href=(format!("/console/integrations/{}/flows/{}", seg(slug), seg(&f.slug))) { (f.slug) }
        }
        h1 { "Try " span.id { (f.slug) } @if let Some(n) = &f.name { " — " span #try-flow-name { (n) } } }
        p.sub {
            "Run starts the flow with this payload as a "
            strong { (flowgate_engine::run_kind(f)) } " execution of version " (ci.record.version) ". "
            @match last {
                Some(id) => { "Prefilled from the last execution, " a href=(format!("/console/executions/{}", seg(id))) { (id) } "." }
                None => "No execution yet to prefill from.",
            }
        }
        @if let Some(m) = &errors.run { p #run-error.notice.bad role="alert" { span aria-hidden="true" { "✗ " } (m) } }
        form #try-form.try-form method="post" action=(action) {
            input type="hidden" name="csrf" value=(s.csrf);
            div.field {
                label for="try-body" { "Body" }
                textarea #try-body name="body" rows="10" spellcheck="false" wrap="off"
                    aria-invalid=[errors.body.as_ref().map(|_| "true")] aria-describedby="try-body-error" {
                    "\n" (form.body)
                }
                (field_error("try-body-error", &errors.body))
            }
            fieldset.body-kind {
                legend { "The body is" }
                label { input type="radio" name="body_kind" value="json" checked[!text_body]; " JSON" }
                label { input type="radio" name="body_kind" value="text" checked[text_body]; " text" }
            }
            div.field {
                label for="try-headers" { "Headers, one " code { "Name: value" } " a line" }
                textarea #try-headers name="headers" rows="4" spellcheck="false" wrap="off"
                    aria-invalid=[errors.headers.as_ref().map(|_| "true")] aria-describedby="try-headers-error" {
                    "\n" (form.headers)
                }
                (field_error("try-headers-error", &errors.headers))
            }
            div.field {
                label for="try-query" { "Query, as " code { "a=1&b=2" } }
                input #try-query type="text" name="query" value=(form.query) spellcheck="false"
                    aria-invalid=[errors.query.as_ref().map(|_| "true")] aria-describedby="try-query-error";
                (field_error("try-query-error", &errors.query))
            }
            div.actions {
                button type="submit" #try-run { "Run" }
                span #try-state.sub role="status" aria-live="polite" {}
            }
        }
        section #try-result.try-result aria-live="polite" aria-label="Result" {}
    };
    let title = format!("Try {}", f.slug);
    let page = layout::page(&title, Nav::Integrations, Some((&s.tenant, &s.csrf)), body);
    (status, Html(page.into_string())).into_response()
}
