//! Bulk retry and replay of the monitor's filtered set, through the engine's bulk jobs (the
//! same [`Engine::bulk`](flowgate_engine::Engine::bulk) as `POST /v1/executions/retry` and
//! `/replay`):
//!
//! 1. `GET /console/executions/bulk?kind=retry|replay&<filters>`: a dry run counts what
//!    matches ("Retry 37 failed executions?") and shows a confirmation form carrying the
//!    filters and the count;
//! 2. `POST /console/executions/bulk` (CSRF): counts again — if the set changed since, the
//!    new count is shown to confirm instead — then starts the job (it works in the
//!    background on what matched then, not on executions added later);
//! 3. `GET /console/executions/bulk/{job}`: the job's progress.
//!
//! As the API's, a bulk retry without a status filter takes the failed executions.

use super::row::{self, Filters};
use crate::Console;
use crate::layout::{self, Nav};
use crate::session::{self, Session};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use flowgate_engine::BulkKind;
use flowgate_store::Status;
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct BulkForm {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    csrf: Option<String>,
    /// The count the person confirmed.
    #[serde(default)]
    expected: Option<String>,
    #[serde(flatten)]
    filters: Filters,
}

fn kind_of(k: Option<&str>) -> Option<BulkKind> {
    match k {
        Some("retry") => Some(BulkKind::Retry),
        Some("replay") => Some(BulkKind::Replay),
        _ => None,
    }
}

fn unavailable(e: &flowgate_store::Error) -> Response {
    tracing::error!(error = %e, "Console: a bulk operation failed.");
    layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The database did not answer; try again.")
}

fn html_page(s: &Session, title: &str, body: Markup) -> Response {
    Html(layout::page(title, Nav::Executions, Some((&s.tenant, &s.csrf)), body).into_string()).into_response()
}

/// The dry-run count and, when something matches, the confirmation form.
fn confirmation(s: &Session, kind: BulkKind, f: &Filters, count: i64, changed: Option<i64>) -> Response {
    let retry = kind == BulkKind::Retry;
    let status = row::given(&f.status).or_else(|| retry.then(|| "failed".to_owned()));
    let (verb, what) = if retry {
        ("Retry", "Each resumes from its failed step; completed steps are not run again.")
    } else {
        (
            "Replay",
            "Each runs again from the start with its trigger event, as a new execution, on the flow's current version.",
        )
    };
    let noun = if count == 1 { "execution" } else { "executions" };
    let question = match &status {
        Some(st) => format!("{verb} {count} {st} {noun}?"),
        None => format!("{verb} {count} {noun}?"),
    };
    let back = format!("/console/executions?{}", f.with_cursor(None));
    let body = html! {
        p.crumbs { a href=(back) { "← Executions" } }
        h1 { "Bulk " (verb.to_lowercase()) }
        @if let Some(before) = changed {
            p.notice role="status" { "The matching executions changed since the count you confirmed (" (before) "); here is the new count." }
        }
        section.confirm #confirm aria-labelledby="bulk-question" {
            @if count == 0 {
                h2 #bulk-question { "No execution matches; there is nothing to " (verb.to_lowercase()) "." }
            } @else {
                h2 #bulk-question { (question) }
                p { (what) " It runs in the background; its progress has its own page." }
            }
            h3 { "Filters" }
            ul.filters-used {
                @for (k, v) in f.pairs() { li { code { (k) } " = " (v) } }
                @if retry && row::given(&f.status).is_none() { li { code { "status" } " = failed (the default of a bulk retry)" } }
                @if f.pairs().is_empty() && !retry { li { "none: every execution" } }
            }
            @if count > 0 {
                form.action method="post" action="/console/executions/bulk" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    input type="hidden" name="kind" value=(kind.as_str());
                    input type="hidden" name="expected" value=(count);
                    (f.hidden())
                    button type="submit" { "Yes, " (verb.to_lowercase()) " " (count) " " (noun) }
                    " " a href=(back) { "Cancel" }
                }
            } @else {
                p { a href=(back) { "Back to the executions" } }
            }
        }
    };
    html_page(s, &format!("Bulk {}", verb.to_lowercase()), body)
}

/// `GET /console/executions/bulk?kind=&<filters>`: the dry run.
pub(crate) async fn confirm(State(c): State<Console>, s: Session, Query(form): Query<BulkForm>) -> Response {
    let Some(kind) = kind_of(form.kind.as_deref()) else {
        return layout::error_page(StatusCode::BAD_REQUEST, "Invalid request", "Choose retry or replay.");
    };
    let default = (kind == BulkKind::Retry).then_some(Status::Failed);
    let filter = match form.filters.bulk_filter(&s.tenant, c.engine().clock().now_ms(), default) {
        Ok(f) => f,
        Err(e) => return layout::error_page(StatusCode::BAD_REQUEST, "Invalid filter", &e),
    };
    match c.engine().bulk(kind, filter, true).await {
        Ok(counted) => confirmation(&s, kind, &form.filters, counted.total, None),
        Err(e) => unavailable(&e),
    }
}

/// `POST /console/executions/bulk`: starts the job the person confirmed.
pub(crate) async fn start(State(c): State<Console>, s: Session, body: Bytes) -> Response {
    let form = match serde_urlencoded::from_bytes::<BulkForm>(&body) {
        Ok(f) => f,
        Err(_) => {
            // Still refuse a forged form first.
            let csrf = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
                .ok()
                .and_then(|p| p.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v));
            return session::check_csrf(&s, csrf.as_deref()).unwrap_or_else(|| {
                layout::error_page(StatusCode::BAD_REQUEST, "Invalid request", "The form could not be read.")
            });
        }
    };
    if let Some(refused) = session::check_csrf(&s, form.csrf.as_deref()) {
        return refused;
    }
    let Some(kind) = kind_of(form.kind.as_deref()) else {
        return layout::error_page(StatusCode::BAD_REQUEST, "Invalid request", "Choose retry or replay.");
    };
    let default = (kind == BulkKind::Retry).then_some(Status::Failed);
    let filter = match form.filters.bulk_filter(&s.tenant, c.engine().clock().now_ms(), default) {
        Ok(f) => f,
        Err(e) => return layout::error_page(StatusCode::BAD_REQUEST, "Invalid filter", &e),
    };
    // What was confirmed is what is done: a set that changed is counted and shown again.
    let now = match c.engine().bulk(kind, filter.clone(), true).await {
        Ok(counted) => counted.total,
        Err(e) => return unavailable(&e),
    };
    let expected = form.expected.as_deref().and_then(|e| e.trim().parse::<i64>().ok());
    if expected != Some(now) || now == 0 {
        let mut res = confirmation(&s, kind, &form.filters, now, expected);
        *res.status_mut() = StatusCode::CONFLICT;
        return res;
    }
    match c.engine().bulk(kind, filter, false).await {
        Ok(started) => match started.job {
            Some(job) => Redirect::to(&format!("/console/executions/bulk/{}", job.id)).into_response(),
            None => {
                layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "Not started", "The job did not start; try again.")
            }
        },
        Err(e) => unavailable(&e),
    }
}

/// `GET /console/executions/bulk/{job}`: a job's progress (the page refreshes itself while it
/// runs, with the script; reload it without).
pub(crate) async fn job(State(c): State<Console>, s: Session, Path(id): Path<String>) -> Response {
    let job = match c.engine().store().bulk_job(&s.tenant, &id).await {
        Ok(Some(j)) => j,
        Ok(None) => return layout::not_found("There is no such bulk job."),
        Err(e) => return unavailable(&e),
    };
    let filter: serde_json::Value = serde_json::from_str(&job.filter).unwrap_or_default();
    // Back to the monitor with the job's filters (the ones it has in the monitor's words).
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (k, name) in [
        ("integration", "integration"),
        ("flow", "flow"),
        ("status", "status"),
        ("triggerKind", "triggerKind"),
        ("search", "search"),
    ] {
        if let Some(v) = filter.get(k).and_then(|v| v.as_str()) {
            pairs.push((name, v.to_owned()));
        }
    }
    let back = format!("/console/executions?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default());
    let running = job.finished_at.is_none();
    let status = if running {
        "running"
    } else if job.failed > 0 {
        "failed"
    } else {
        "succeeded"
    };
    let body = html! {
        p.crumbs { a href=(back) { "← Executions" } }
        h1 { "Bulk " (job.kind) " " span.id { (job.id) } }
        dl.summary #bulk-job data-running=[running.then_some("1")] {
            dt { "Status" } dd #job-status { (layout::status_badge(status)) }
            dt { "Selected" } dd #job-total { (job.total) }
            dt { "Done" } dd #job-done { (job.done) }
            dt { "Could not be done" } dd #job-failed { (job.failed) }
            dt { "Started" } dd { (layout::time(job.created_at)) }
            @if let Some(t) = job.finished_at { dt { "Finished" } dd { (layout::time(t)) } }
        }
        @if job.failed > 0 {
            p.sub { "An execution that could not be handled (for example one that is no longer failed) is left as it was." }
        }
        details { summary { "Filter" } (layout::json_block(&job.filter)) }
        p { a href=(back) { "See the executions" } }
    };
    html_page(&s, &format!("Bulk {}", job.kind), body)
}
