//! Integrations: the list (`/console/integrations`: each integration with its flows, live or
//! not, each flow's last execution and its failures of the last 24 hours) and one
//! integration's page (`page`) with its deployment form (`deploy`), connections, versions
//! with a side-by-side diff (`diff`, `versions`) and Rollback, and its tests (`actions`).
//!
//! The list reads what `GET /v1/integrations` reads (the store's records, the engine's
//! compiled versions), plus, without scanning executions: each flow's newest execution (one
//! seek of `executions_by_flow` per flow) and the failures of the last 24 hours counted in
//! one grouped query over the partial index `executions_failed_recent`
//! (`Store::failures_by_flow`).

mod actions;
mod deploy;
mod diff;
mod page;
mod versions;

use crate::Console;
use crate::layout::{self, Nav};
use crate::session::Session;
use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use flowgate_store::{ExecutionQuery, ExecutionRow};
use maud::html;
use std::collections::HashMap;

/// How far back the list counts failures.
const FAILURE_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// This area's routes (merged into the console's router).
pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/integrations", get(list))
        .route("/integrations/{slug}", get(page::get))
        .route("/integrations/{slug}/deployment", post(deploy::save))
        .route("/integrations/{slug}/diff", get(versions::diff_page))
        .route("/integrations/{slug}/versions/{n}/rollback", post(versions::rollback))
        .route("/integrations/{slug}/test", post(actions::run_tests))
        .route("/integrations/{slug}/connections/{name}/{action}", post(actions::connection))
}

/// `GET /console/integrations`.
pub(crate) async fn list(State(c): State<Console>, s: Session) -> Response {
    match rows(&c, &s.tenant).await {
        Ok(rows) => {
            let body = html! {
                h1 { "Integrations" }
                @if rows.is_empty() {
                    p.empty { "No integrations yet: apply one with " code { "flowgate apply -f <file>" } "." }
                } @else {
                    div.scroll {
                        table.list #integrations {
                            caption.sr-only { "Integrations" }
                            thead { tr {
                                th scope="col" { "Integration" } th scope="col" { "Version" } th scope="col" { "Live" }
                                th scope="col" { "Flows: last execution, failures in 24 h" }
                                th scope="col" { "Failures (24 h)" }
                            } }
                            tbody {
                                @for r in &rows {
                                    tr data-integration=(r.slug) {
                                        td data-label="Integration" {
                                            a href=(format!("/console/integrations/{}", path_part(&r.slug))) { (r.slug) }
                                            @if let Some(name) = &r.name { div.sub { (name) } }
                                        }
                                        td data-label="Version" { (r.version) }
                                        td data-label="Live" {
                                            @if r.live { span.badge.st-succeeded { span.icon aria-hidden="true" { "●" } " live" } }
                                            @else { span.badge.st-other { span.icon aria-hidden="true" { "○" } " not live" } }
                                        }
                                        td data-label="Flows" {
                                            ul.flows {
                                                @for f in &r.flows {
                                                    li data-flow=(f.slug) {
                                                        a href=(format!("/console/integrations/{}/flows/{}", path_part(&r.slug), path_part(&f.slug))) { (f.slug) }
                                                        @if let Some(n) = &f.name { " — " span.sub { (n) } }
                                                        " "
                                                        @if !f.active { span.sub { "(switched off) " } }
                                                        @match &f.last {
                                                            Some(e) => a.last href=(format!("/console/executions/{}", e.id)) title="Last execution" { (layout::status_badge(&e.status)) },
                                                            None => span.sub.last { "no executions" },
                                                        }
                                                        " "
                                                        span class=(if f.failures > 0 { "failures error" } else { "failures" }) data-failures=(f.failures) {
                                                            (f.failures) " failed in 24 h"
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                        td data-label="Failures (24 h)" {
                                            @let total: i64 = r.flows.iter().map(|f| f.failures).sum();
                                            @if total > 0 {
                                                a.error href=(format!("/console/executions?integration={}&status=failed", url_part(&r.slug))) data-total-failures=(total) { (total) }
                                            } @else { span data-total-failures="0" { "0" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            };
            Html(layout::page("Integrations", Nav::Integrations, Some((&s.tenant, &s.csrf)), body).into_string())
                .into_response()
        }
        Err(e) => page::store_failed(e),
    }
}

struct FlowRow {
    slug: String,
    name: Option<String>,
    active: bool,
    last: Option<ExecutionRow>,
    failures: i64,
}

struct Row {
    slug: String,
    name: Option<String>,
    version: i64,
    flows: Vec<FlowRow>,
    live: bool,
}

async fn rows(c: &Console, tenant: &str) -> Result<Vec<Row>, flowgate_store::Error> {
    let engine = c.engine();
    let store = engine.store();
    let since = engine.clock().now_ms() - FAILURE_WINDOW_MS;
    let (records, failures) = tokio::try_join!(store.integrations(tenant), store.failures_by_flow(tenant, since))?;
    let failures: HashMap<(String, String), i64> = failures.into_iter().map(|(i, f, n)| ((i, f), n)).collect();
    let mut out = Vec::new();
    for r in records {
        let Some(ci) = engine.integration(tenant, &r.slug).await? else { continue };
        // Each flow's newest execution: one index seek each, run together.
        let queries: Vec<ExecutionQuery> = ci
            .flows
            .values()
            .map(|f| ExecutionQuery {
                tenant: tenant.to_owned(),
                integration: Some(r.slug.clone()),
                flow: Some(f.slug.clone()),
                limit: 1,
                ..ExecutionQuery::default()
            })
            .collect();
        let lasts = futures::future::try_join_all(queries.iter().map(|q| store.executions(q))).await?;
        let flows = ci
            .flows
            .values()
            .zip(lasts)
            .map(|(f, last)| FlowRow {
                slug: f.slug.clone(),
                name: f.name.clone(),
                active: engine.is_active(f),
                last: last.into_iter().next(),
                failures: failures.get(&(r.slug.clone(), f.slug.clone())).copied().unwrap_or(0),
            })
            .collect();
        out.push(Row {
            slug: r.slug.clone(),
            name: ci.definition.name.clone(),
            version: ci.record.version,
            flows,
            live: ci.live(),
        });
    }
    Ok(out)
}

/// A value for a query string (percent-encoded).
pub(crate) fn url_part(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|q| q[1..].to_owned()).unwrap_or_default()
}

/// A path segment, percent-encoded (everything but unreserved characters).
pub(crate) fn path_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
