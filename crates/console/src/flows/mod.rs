//! The flow page in two panels as users know them: *General* (trigger, webhook URL, schedule,
//! connections, notifications, last execution) and *Steps* (the pipeline drawn top to bottom).
//!
//! `GET /console/integrations/{slug}/flows/{flow}` reads what `GET /v1/integrations/{slug}/
//! flows/{flow}` reads, the same way: the engine's compiled integration (its definition and
//! compiled flow), the flow's switch (`Engine::is_active`), its last run and log, the
//! schedule's next slots. `?execution=<id>` lays one of the flow's executions over the
//! diagram: its journal, read as the execution page reads it (the tenant-scoped row, the
//! journal with its inputs filled in, within the node's memory budget).
//!
//! `POST …/active` switches the flow on or off with `Engine::set_active`, as
//! `POST /v1/integrations/{slug}/flows/{flow}/activate|deactivate` does.
//!
//! - `general`: the General panel.
//! - `steps`: the Steps panel (the diagram, step summaries, the execution overlay).

mod general;
mod steps;

use crate::Console;
use crate::layout::{self, Nav};
use crate::session::{self, Session};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use flowgate_engine::CompiledIntegration;
use flowgate_store::{ExecutionQuery, ExecutionRow, FlowKey, LogRecord, StepRecord};
use http::StatusCode;
use maud::html;
use serde::Deserialize;
use std::sync::Arc;

/// Recent executions offered in the Steps panel's picker.
const RECENT: u32 = 20;

/// This area's routes (merged into the console's router).
pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/integrations/{slug}/flows/{flow}", get(page))
        .route("/integrations/{slug}/flows/{flow}/active", post(switch))
}

/// The page's URL (slugs are checked on apply; encoded anyway).
pub(crate) fn flow_url(slug: &str, flow: &str) -> String {
    format!("/console/integrations/{}/flows/{}", path_part(slug), path_part(flow))
}

/// A value for one URL path segment (percent-encoded beyond the unreserved characters).
pub(crate) fn path_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize, Default)]
pub(crate) struct PageQuery {
    /// An execution of the flow to lay over the diagram.
    #[serde(default)]
    execution: Option<String>,
}

/// The execution laid over the diagram, with its journal.
pub(crate) struct Overlay {
    pub(crate) row: ExecutionRow,
    pub(crate) journal: Vec<StepRecord>,
}

/// What the page shows, read once.
pub(crate) struct FlowView {
    pub(crate) ci: Arc<CompiledIntegration>,
    pub(crate) flow: String,
    pub(crate) active: bool,
    pub(crate) last: Option<(ExecutionRow, Vec<LogRecord>)>,
    pub(crate) recent: Vec<ExecutionRow>,
    pub(crate) overlay: Option<Overlay>,
    /// Why `?execution=` shows nothing (not found, another flow's).
    pub(crate) overlay_note: Option<String>,
    pub(crate) now: i64,
    pub(crate) public_url: String,
    pub(crate) mail_domain: String,
}

fn unavailable() -> Response {
    layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The database did not answer; try again.")
}

/// `GET /console/integrations/{slug}/flows/{flow}`.
pub(crate) async fn page(
    State(c): State<Console>,
    s: Session,
    Path((slug, flow)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Response {
    match load(&c, &s, &slug, &flow, q.execution.as_deref().filter(|e| !e.is_empty())).await {
        Ok(Some(view)) => {
            let Some(def) = view.ci.definition.flow(&view.flow) else {
                return layout::not_found("There is no such flow.");
            };
            let f = &view.ci.flows[&view.flow];
            let title = def.name.clone().unwrap_or_else(|| def.flow.clone());
            let url = flow_url(&view.ci.record.slug, &f.slug);
            let show_steps = view.overlay.is_some() || view.overlay_note.is_some();
            let body = html! {
                p.crumbs {
                    a href="/console/integrations" { "Integrations" } " / "
                    span { (view.ci.record.slug) } " / "
                    span { (f.slug) }
                }
                div.flow-title {
                    h1 { (title) }
                    div.actions role="group" aria-label="Flow actions" {
                        a.button href=(format!("/console/integrations/{}/edit", path_part(&view.ci.record.slug))) { "Edit" }
                        a.button href=(format!("{url}/try")) { "Try it" }
                        a.button.secondary href=(format!("/console/executions?integration={}&flow={}",
                            crate::integrations::url_part(&view.ci.record.slug), crate::integrations::url_part(&f.slug))) { "Executions" }
                    }
                }
                div.tabs #flow-tabs role="tablist" aria-label="Flow panels" data-initial=(if show_steps { "steps" } else { "general" }) {
                    a #tab-general role="tab" href="#general" aria-controls="general" aria-selected=(if show_steps { "false" } else { "true" }) { "General" }
                    a #tab-steps role="tab" href="#steps" aria-controls="steps" aria-selected=(if show_steps { "true" } else { "false" }) {
                        "Steps " span.count { "(" (def.steps.len()) ")" }
                    }
                }
                section #general.panel role="tabpanel" aria-labelledby="tab-general" tabindex="-1" {
                    (general::render(&view, def, f, &s.csrf))
                }
                section #steps.panel role="tabpanel" aria-labelledby="tab-steps" tabindex="-1" {
                    (steps::render(&view, def, f, &url))
                }
            };
            Html(layout::page(&title, Nav::Integrations, Some((&s.tenant, &s.csrf)), body).into_string())
                .into_response()
        }
        // Another tenant's integration is as absent as one that never existed.
        Ok(None) => layout::not_found("There is no such integration or flow."),
        Err(e) => {
            tracing::error!(error = %e, integration = %slug, flow = %flow, "Console: cannot read a flow.");
            unavailable()
        }
    }
}

async fn load(
    c: &Console,
    s: &Session,
    slug: &str,
    flow: &str,
    execution: Option<&str>,
) -> Result<Option<FlowView>, flowgate_store::Error> {
    let engine = c.engine();
    let store = engine.store();
    let Some(ci) = engine.integration(&s.tenant, slug).await? else { return Ok(None) };
    let Some(f) = ci.flows.get(flow).cloned() else { return Ok(None) };
    let key = FlowKey { tenant: &s.tenant, integration: slug, flow };
    let last = match store.last_run(key).await? {
        Some(r) => {
            let logs = store.logs(&r.id).await?;
            Some((r, logs))
        }
        None => None,
    };
    let recent = store
        .executions(&ExecutionQuery {
            tenant: s.tenant.clone(),
            integration: Some(slug.to_owned()),
            flow: Some(flow.to_owned()),
            limit: RECENT,
            ..ExecutionQuery::default()
        })
        .await?;
    let (mut overlay, mut overlay_note) = (None, None);
    if let Some(id) = execution {
        match store.execution(Some(&s.tenant), id).await? {
            Some(row) if row.integration == slug && row.flow == flow => {
                let mut journal = store.journal(&row.id).await?;
                // As the execution page and the API: within the node's memory budget.
                let size = row.trigger.len()
                    + journal
                        .iter()
                        .map(|s| s.input.as_ref().map_or(0, String::len) + s.output.as_ref().map_or(0, String::len))
                        .sum::<usize>();
                match engine.reserve(size * 2).await {
                    Some(_room) => {
                        flowgate_store::fill_inputs(&mut journal, &row.trigger);
                        overlay = Some(Overlay { row, journal });
                    }
                    None => {
                        overlay_note = Some("Too many large executions are being read; try again shortly.".to_owned())
                    }
                }
            }
            Some(_) => overlay_note = Some("That execution belongs to another flow.".to_owned()),
            None => overlay_note = Some("There is no such execution.".to_owned()),
        }
    }
    Ok(Some(FlowView {
        active: engine.is_active(&f),
        flow: f.slug.clone(),
        ci,
        last,
        recent,
        overlay,
        overlay_note,
        now: engine.clock().now_ms(),
        public_url: c.host.public_url().to_owned(),
        mail_domain: engine.registry().mail_domain().to_owned(),
    }))
}

#[derive(Deserialize)]
struct SwitchForm {
    csrf: Option<String>,
    active: Option<String>,
}

/// `POST /console/integrations/{slug}/flows/{flow}/active` (`active=true|false`): switches
/// the flow on or off on every node, as `POST /v1/…/activate|deactivate`.
pub(crate) async fn switch(
    State(c): State<Console>,
    s: Session,
    Path((slug, flow)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let form = serde_urlencoded::from_bytes::<SwitchForm>(&body).ok();
    let given = form.as_ref().and_then(|f| f.csrf.as_deref());
    if let Some(refused) = session::check_csrf(&s, given) {
        return refused;
    }
    let active = match form.as_ref().and_then(|f| f.active.as_deref()) {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return layout::error_page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "Say whether the flow should be active (true or false).",
            );
        }
    };
    let key = FlowKey { tenant: &s.tenant, integration: &slug, flow: &flow };
    match c.engine().set_active(key, active).await {
        Ok(()) => {
            tracing::info!(tenant = %s.tenant, integration = %slug, flow = %flow, active, "Console: flow switched.");
            Redirect::to(&flow_url(&slug, &flow)).into_response()
        }
        Err(flowgate_store::Error::NotFound) => layout::not_found("There is no such integration or flow."),
        Err(e) => {
            tracing::error!(error = %e, integration = %slug, flow = %flow, "Console: cannot switch a flow.");
            unavailable()
        }
    }
}
