//! The integrations list: each of the tenant's integrations with its version, its flows,
//! whether it is live, and the status of its last execution. Reads what
//! `GET /v1/integrations` reads (the store's records, the engine's compiled versions).

use crate::Console;
use crate::layout::{self, Nav};
use crate::session::Session;
use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use flowgate_store::ExecutionQuery;
use http::StatusCode;
use maud::html;

/// This area's routes (merged into the console's router).
pub(crate) fn routes() -> Router<Console> {
    Router::new().route("/integrations", get(page))
}

/// `GET /console/integrations`.
pub(crate) async fn page(State(c): State<Console>, s: Session) -> Response {
    match rows(&c, &s.tenant).await {
        Ok(rows) => {
            let body = html! {
                h1 { "Integrations" }
                @if rows.is_empty() {
                    p.empty { "No integrations yet: apply one with " code { "flowgate apply -f <file>" } "." }
                } @else {
                    div.scroll {
                        table.list {
                            caption.sr-only { "Integrations" }
                            thead { tr {
                                th scope="col" { "Integration" } th scope="col" { "Version" } th scope="col" { "Flows" }
                                th scope="col" { "Live" } th scope="col" { "Last execution" }
                            } }
                            tbody {
                                @for r in &rows {
                                    tr {
                                        td {
                                            a href=(format!("/console/executions?integration={}", url_part(&r.slug))) { (r.slug) }
                                            @if let Some(name) = &r.name { div.sub { (name) } }
                                        }
                                        td { (r.version) }
                                        td {
                                            (r.flows.len())
                                            ul.flows {
                                                @for (slug, name) in &r.flows {
                                                    li { (slug) @if let Some(n) = name { " — " span.sub { (n) } } }
                                                }
                                            }
                                        }
                                        td { @if r.live { span.badge.st-succeeded { span.icon aria-hidden="true" { "●" } " live" } }
                                             @else { span.badge.st-other { span.icon aria-hidden="true" { "○" } " not live" } } }
                                        td {
                                            @match &r.last {
                                                Some((id, status)) => a href=(format!("/console/executions/{id}")) { (layout::status_badge(status)) },
                                                None => span.sub { "none" },
                                            }
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
        Err(e) => {
            tracing::error!(error = %e, "Console: cannot list integrations.");
            layout::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The database did not answer; try again.",
            )
        }
    }
}

struct Row {
    slug: String,
    name: Option<String>,
    version: i64,
    flows: Vec<(String, Option<String>)>,
    live: bool,
    last: Option<(String, String)>,
}

async fn rows(c: &Console, tenant: &str) -> Result<Vec<Row>, flowgate_store::Error> {
    let store = c.engine().store();
    let mut out = Vec::new();
    for r in store.integrations(tenant).await? {
        let Some(ci) = c.engine().integration(tenant, &r.slug).await? else { continue };
        let last = store
            .executions(&ExecutionQuery {
                tenant: tenant.to_owned(),
                integration: Some(r.slug.clone()),
                flow: None,
                status: None,
                before: None,
                limit: 1,
            })
            .await?
            .into_iter()
            .next()
            .map(|e| (e.id, e.status));
        out.push(Row {
            slug: r.slug.clone(),
            name: ci.definition.name.clone(),
            version: ci.record.version,
            flows: ci.flows.values().map(|f| (f.slug.clone(), f.name.clone())).collect(),
            live: ci.live(),
            last,
        });
    }
    Ok(out)
}

/// A value for a query string (percent-encoded).
pub(crate) fn url_part(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|q| q[1..].to_owned()).unwrap_or_default()
}
