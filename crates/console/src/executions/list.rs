//! The executions monitor, `/console/executions`: newest first, filtered by integration,
//! flow and status, paged with the API's cursor (`seq`), kept up to date by the live stream
//! (`stream.rs`) through the page's script. Reads with the same store query as
//! `GET /v1/executions`.

use super::row::{self, Filters};
use crate::Console;
use crate::layout::{self, Nav};
use crate::session::Session;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use flowgate_store::Status;
use http::StatusCode;
use maud::html;

/// Rows per page.
const PAGE: u32 = 50;

/// `GET /console/executions`.
pub(crate) async fn page(State(c): State<Console>, s: Session, Query(f): Query<Filters>) -> Response {
    let query = match f.query(&s.tenant, PAGE) {
        Ok(q) => q,
        Err(e) => return layout::error_page(StatusCode::BAD_REQUEST, "Invalid filter", &e),
    };
    let store = c.engine().store();
    let (rows, integrations) = match tokio::try_join!(store.executions(&query), store.integrations(&s.tenant)) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "Console: cannot list executions.");
            return layout::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The database did not answer; try again.",
            );
        }
    };
    let next = (rows.len() == PAGE as usize).then(|| rows.last().map(|r| r.seq.to_string())).flatten();
    let current_status = query.status.map(|s| s.as_str());
    let stream = format!("/console/executions/stream?{}", f.with_cursor(None));
    // New executions are inserted only on the first page; older pages just update their rows.
    let live = if query.before.is_none() { "insert" } else { "update" };
    let body = html! {
        h1 { "Executions" }
        form.filters method="get" action="/console/executions" role="search" aria-label="Filter executions" {
            div.field {
                label for="f-integration" { "Integration" }
                select #f-integration name="integration" {
                    option value="" { "All" }
                    @for i in &integrations {
                        option value=(i.slug) selected[query.integration.as_deref() == Some(i.slug.as_str())] { (i.slug) }
                    }
                }
            }
            div.field {
                label for="f-flow" { "Flow" }
                input #f-flow type="text" name="flow" value=(query.flow.as_deref().unwrap_or("")) placeholder="any flow";
            }
            div.field {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "Any" }
                    @for st in Status::ALL {
                        option value=(st.as_str()) selected[current_status == Some(st.as_str())] { (st.as_str()) }
                    }
                }
            }
            div.field.actions { button type="submit" { "Filter" } " " a href="/console/executions" { "Clear" } }
        }
        p #live.live aria-live="polite" { "Live updates: connecting…" }
        div.scroll {
            table #executions.list {
                caption.sr-only { "Executions, newest first" }
                thead { tr {
                    th scope="col" { "Time (UTC)" } th scope="col" { "Integration" } th scope="col" { "Flow" }
                    th scope="col" { "Status" } th scope="col" { "Trigger" } th scope="col" { "Duration" }
                    th scope="col" { "Execution" }
                } }
                tbody data-stream=(stream) data-live=(live) {
                    @for r in &rows { (row::render(r)) }
                    @if rows.is_empty() {
                        tr.empty { td colspan="7" { "No executions match." } }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if query.before.is_some() { a href=(format!("/console/executions?{}", f.with_cursor(None))) { "Newest" } }
            @if let Some(n) = &next { a rel="next" href=(format!("/console/executions?{}", f.with_cursor(Some(n)))) { "Older →" } }
        }
    };
    Html(layout::page("Executions", Nav::Executions, Some((&s.tenant, &s.csrf)), body).into_string()).into_response()
}
