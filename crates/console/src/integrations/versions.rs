//! Versions: the side-by-side diff of two versions' sources
//! (`/console/integrations/{slug}/diff?from=&to=`, the same sources and line diff as
//! `GET /v1/integrations/{slug}/versions/{a}/diff/{b}`) and Rollback
//! (`POST …/versions/{n}/rollback`, calling [`Engine::rollback`] as the API does: the old
//! version's source applied again as a new version).
//!
//! [`Engine::rollback`]: flowgate_engine::Engine::rollback

use super::diff::{self, Kind};
use super::page;
use super::path_part;
use crate::Console;
use crate::layout::{self, Nav};
use crate::session::{self, Session};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use flowgate_store::VersionRecord;
use http::StatusCode;
use maud::html;
use serde::Deserialize;

/// `?from=&to=`.
#[derive(Deserialize, Default)]
pub(crate) struct Pick {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

fn number(v: Option<&str>) -> Option<i64> {
    v.map(str::trim).filter(|v| !v.is_empty()).and_then(|v| v.parse().ok())
}

/// `GET /console/integrations/{slug}/diff?from=&to=`.
pub(crate) async fn diff_page(
    State(c): State<Console>,
    s: Session,
    Path(slug): Path<String>,
    Query(p): Query<Pick>,
) -> Response {
    let store = c.engine().store();
    let versions = match store.integration(&s.tenant, &slug).await {
        Ok(Some(_)) => match store.versions(&s.tenant, &slug).await {
            Ok(v) => v,
            Err(e) => return page::store_failed(e),
        },
        Ok(None) => return layout::not_found("There is no such integration."),
        Err(e) => return page::store_failed(e),
    };
    let (Some(a), Some(b)) = (number(p.from.as_deref()), number(p.to.as_deref())) else {
        return layout::error_page(StatusCode::BAD_REQUEST, "Invalid versions", "Choose two versions to compare.");
    };
    let pick = |n: i64| versions.iter().find(|v| v.version == n);
    let (Some(va), Some(vb)) = (pick(a), pick(b)) else {
        return layout::not_found("That integration has no such version.");
    };
    let base = format!("/console/integrations/{}", path_part(&slug));
    // Off the async workers: a diff of two large sources takes up to its timeout.
    let (old, new) = (va.source.clone(), vb.source.clone());
    let Ok((rows, added, removed)) = tokio::task::spawn_blocking(move || diff::side_by_side(&old, &new)).await else {
        return layout::error_page(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "Diff failed",
            "The diff could not be computed.",
        );
    };
    let body = html! {
        p.crumbs { a href=(base) { "← " (slug) } }
        h1 { "Version " (a) " → version " (b) " " span.sub { code { (slug) } } }
        (picker(&base, &versions, a, b))
        p #diff-counts { span.added { "+" (added) " added" } ", " span.removed { "−" (removed) " removed" }
            @if added == 0 && removed == 0 { " — the sources are the same." } }
        div.scroll { table #diff.diff {
            caption.sr-only { "Version " (a) " on the left, version " (b) " on the right; removed lines are marked −, added lines +" }
            colgroup { col.num; col.mark; col.text; col.num; col.mark; col.text; }
            thead { tr {
                th scope="col" { "Line" } th scope="col" { span.sr-only { "Change" } } th scope="col" { "Version " (a) }
                th scope="col" { "Line" } th scope="col" { span.sr-only { "Change" } } th scope="col" { "Version " (b) }
            } }
            tbody {
                @for r in &rows {
                    @let (lc, rc, lm, rm) = match r.kind {
                        Kind::Equal => ("eq", "eq", "", ""),
                        Kind::Removed => ("del", "none", "−", ""),
                        Kind::Added => ("none", "ins", "", "+"),
                        Kind::Changed => ("del", "ins", "−", "+"),
                    };
                    tr {
                        td.num { @if let Some((n, _)) = &r.left { (n) } }
                        td class=(format!("mark {lc}")) { (lm) }
                        td class=(format!("text {lc}")) { @if let Some((_, t)) = &r.left { (t) } }
                        td.num { @if let Some((n, _)) = &r.right { (n) } }
                        td class=(format!("mark {rc}")) { (rm) }
                        td class=(format!("text {rc}")) { @if let Some((_, t)) = &r.right { (t) } }
                    }
                }
            }
        } }
        @if va.id != vb.id {
            form.action method="post" action=(format!("{base}/versions/{a}/rollback")) {
                input type="hidden" name="csrf" value=(s.csrf);
                button type="submit" { "Roll back to version " (a) }
                " " span.sub { "(applies version " (a) "'s source again as a new version)" }
            }
        }
    };
    Html(layout::page(&format!("Diff of {slug}"), Nav::Integrations, Some((&s.tenant, &s.csrf)), body).into_string())
        .into_response()
}

fn picker(base: &str, versions: &[VersionRecord], a: i64, b: i64) -> maud::Markup {
    html! {
        form.filters method="get" action=(format!("{base}/diff")) aria-label="Compare versions" {
            div.field {
                label for="diff-from" { "From version" }
                select #diff-from name="from" { @for v in versions { option value=(v.version) selected[v.version == a] { (v.version) } } }
            }
            div.field {
                label for="diff-to" { "To version" }
                select #diff-to name="to" { @for v in versions { option value=(v.version) selected[v.version == b] { (v.version) } } }
            }
            div.field.actions { button type="submit" { "Show diff" } }
        }
    }
}

#[derive(Deserialize)]
struct Form {
    csrf: Option<String>,
}

/// `POST /console/integrations/{slug}/versions/{n}/rollback`.
pub(crate) async fn rollback(
    State(c): State<Console>,
    s: Session,
    Path((slug, n)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let given = serde_urlencoded::from_bytes::<Form>(&body).ok().and_then(|f| f.csrf);
    if let Some(r) = session::check_csrf(&s, given.as_deref()) {
        return r;
    }
    let engine = c.engine();
    let store = engine.store();
    let versions = match store.integration(&s.tenant, &slug).await {
        Ok(Some(_)) => match store.versions(&s.tenant, &slug).await {
            Ok(v) => v,
            Err(e) => return page::store_failed(e),
        },
        Ok(None) => return layout::not_found("There is no such integration."),
        Err(e) => return page::store_failed(e),
    };
    let Some(v) = n.parse::<i64>().ok().and_then(|n| versions.into_iter().find(|v| v.version == n)) else {
        return layout::not_found("That integration has no such version.");
    };
    match engine.rollback(&s.tenant, &v).await {
        Ok((outcome, ci)) => {
            let created = matches!(outcome, flowgate_store::PutOutcome::Created(_));
            let mut to = format!("/console/integrations/{}?rolledback={}", path_part(&slug), v.version);
            if created {
                to.push_str(&format!("&version={}", ci.record.version));
            }
            Redirect::to(&format!("{to}#versions")).into_response()
        }
        Err(flowgate_engine::ApplyError::Invalid(problems)) => {
            let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
            layout::error_page(StatusCode::UNPROCESSABLE_ENTITY, "Not rolled back", &text.join("; "))
        }
        Err(flowgate_engine::ApplyError::Conflict(m)) => {
            layout::error_page(StatusCode::CONFLICT, "Not rolled back", &m)
        }
        Err(flowgate_engine::ApplyError::Store(e)) => page::store_failed(e),
    }
}
