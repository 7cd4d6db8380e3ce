//! The executions monitor, `/console/executions`: newest first, filtered by integration,
//! flow, status, trigger kind, time range (from/to or a quick range) and a search by
//! execution id or delivery identity, paged with the API's keyset cursor (`seq`, never an
//! OFFSET), kept up to date by the live stream (`stream.rs`, same filters) through the page's
//! script. Reads with the same store query as `GET /v1/executions`. The filtered set can be
//! retried or replayed in bulk (`bulk.rs`), after a dry-run count.

use super::row::{self, Filters, RANGES, TRIGGER_KINDS};
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

/// A time filter as the `datetime-local` field shows it (UTC, no zone; milliseconds only
/// when it has some), whatever form it was given in; as given when it is not a time.
fn field_time(v: &Option<String>) -> String {
    let Some(given) = row::given(v) else { return String::new() };
    match row::parse_time(&given) {
        Some(ms) => {
            let text = flowgate_engine::clock::rfc3339(ms);
            let text = text.trim_end_matches('Z');
            text.strip_suffix(".000").unwrap_or(text).to_owned()
        }
        None => given,
    }
}

/// `GET /console/executions`.
pub(crate) async fn page(State(c): State<Console>, s: Session, Query(f): Query<Filters>) -> Response {
    let now = c.engine().clock().now_ms();
    let query = match f.query(&s.tenant, PAGE, now) {
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
    let current_kind = query.trigger_kind.as_deref();
    let current_range = row::given(&f.range);
    let text = |v: &Option<String>| row::given(v).unwrap_or_default();
    let stream = format!("/console/executions/stream?{}", f.with_cursor(None));
    // New executions are inserted only on the first page; older pages just update their rows.
    let live = if query.before.is_none() { "insert" } else { "update" };
    let body = html! {
        h1 { "Executions" }
        form.filters #filters method="get" action="/console/executions" role="search" aria-label="Filter executions" {
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
            div.field {
                label for="f-trigger" { "Trigger kind" }
                select #f-trigger name="triggerKind" {
                    option value="" { "Any" }
                    @for k in TRIGGER_KINDS {
                        option value=(k) selected[current_kind == Some(*k)] { (k) }
                    }
                }
            }
            div.field {
                label for="f-range" { "Time range" }
                select #f-range name="range" {
                    option value="" { "Any time" }
                    @for (v, words, _) in RANGES {
                        option value=(v) selected[current_range.as_deref() == Some(*v)] { (words) }
                    }
                }
            }
            div.field {
                label for="f-from" { "From (UTC)" }
                input #f-from type="datetime-local" name="from" step="any" value=(field_time(&f.from));
            }
            div.field {
                label for="f-to" { "To (UTC)" }
                input #f-to type="datetime-local" name="to" step="any" value=(field_time(&f.to));
            }
            div.field.wide {
                label for="f-search" { "Execution id or delivery identity" }
                input #f-search type="search" name="search" value=(text(&f.search)) placeholder="an execution id or an Idempotency-Key";
            }
            div.field.actions { button type="submit" { "Filter" } " " a href="/console/executions" { "Clear" } }
        }
        form.bulk #bulk method="get" action="/console/executions/bulk" aria-label="Bulk actions on the filtered executions" {
            (f.hidden())
            span.sub {
                @if f.any() { "All executions matching these filters (every page): " }
                @else { "All executions (no filter set): " }
            }
            button.secondary type="submit" name="kind" value="retry" title="Count first, then confirm" { "Retry all…" }
            " "
            button.secondary type="submit" name="kind" value="replay" title="Count first, then confirm" { "Replay all…" }
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
