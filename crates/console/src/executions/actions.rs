//! The execution page's buttons: `POST /console/executions/{id}/retry|replay|cancel|skip`
//! and `POST /console/executions/{id}/deliveries/{delivery}/resend`, each calling the engine
//! function its REST twin calls (`POST /v1/executions/{id}/…`, `/v1/deliveries/{id}/resend`),
//! after checking the session's CSRF token.
//!
//! Every action is confirmed first, without script: a POST without `confirmed=yes` only
//! renders a page saying what will happen, whose form posts again with it. Then back to a
//! page (the new execution's, for a replay).

use crate::Console;
use crate::layout::{self, Nav};
use crate::session::{self, Session};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use flowgate_store::ExecutionRow;
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

#[derive(Deserialize, Default)]
struct Form {
    csrf: Option<String>,
    /// `yes` once the person confirmed.
    confirmed: Option<String>,
    /// A replay's version: `latest` (default) or `original`.
    version: Option<String>,
}

fn read_form(body: &[u8]) -> Form {
    serde_urlencoded::from_bytes::<Form>(body).unwrap_or_default()
}

fn store_error(e: flowgate_store::Error, id: &str, action: &str, what: &str) -> Response {
    match e {
        flowgate_store::Error::NotFound => layout::not_found(&format!("There is no such {what}.")),
        flowgate_store::Error::Conflict(m) => layout::error_page(StatusCode::CONFLICT, "Not done", &m),
        e => {
            tracing::error!(error = %e, execution_id = %id, action, "Console: an action failed.");
            layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "Not done", "The action failed; try again.")
        }
    }
}

/// The confirmation page of an action: what it will do, and the form that does it.
fn confirm_page(
    s: &Session,
    row: &ExecutionRow,
    action_url: &str,
    label: &str,
    question: Markup,
    extra: Markup,
) -> Response {
    let back = format!("/console/executions/{}", row.id);
    let body = html! {
        p.crumbs { a href=(back) { "← Execution " (row.id) } }
        section.confirm #confirm aria-labelledby="confirm-question" {
            h1 #confirm-question { (question) }
            form.action method="post" action=(action_url) {
                input type="hidden" name="csrf" value=(s.csrf);
                input type="hidden" name="confirmed" value="yes";
                (extra)
                button type="submit" { "Confirm " (label) }
                " " a href=(back) { "Cancel" }
            }
        }
    };
    Html(layout::page(&format!("Confirm {label}"), Nav::Executions, Some((&s.tenant, &s.csrf)), body).into_string())
        .into_response()
}

/// `POST /console/executions/{id}/{action}`.
pub(crate) async fn act(
    State(c): State<Console>,
    s: Session,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let form = read_form(&body);
    if let Some(refused) = session::check_csrf(&s, form.csrf.as_deref()) {
        return refused;
    }
    if !matches!(action.as_str(), "retry" | "replay" | "cancel" | "skip") {
        return layout::not_found("There is no such action.");
    }
    let original = match form.version.as_deref() {
        None | Some("") | Some("latest") => false,
        Some("original") => true,
        Some(other) => {
            return layout::error_page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                &format!("unknown version `{other}`: expected latest or original"),
            );
        }
    };
    let engine = c.engine();
    if form.confirmed.as_deref() != Some("yes") {
        let row = match engine.store().execution(Some(&s.tenant), &id).await {
            Ok(Some(r)) => r,
            Ok(None) => return layout::not_found("There is no such execution."),
            Err(e) => return store_error(e, &id, &action, "execution"),
        };
        let url = format!("/console/executions/{id}/{action}");
        let ex = html! { "execution " span.id { (row.id) } };
        return match action.as_str() {
            "retry" => {
                let from = row.failed_step.as_deref().unwrap_or("the step that stopped it");
                confirm_page(
                    &s,
                    &row,
                    &url,
                    "retry",
                    html! { "Retry " (ex) " from step " strong { (from) } "?" },
                    html! {
                        p { "Completed steps are not run again; it runs as round " (row.attempt + 1) "." }
                    },
                )
            }
            "replay" => {
                let which = if original {
                    format!("its original version (version {})", row.version)
                } else {
                    "the flow's latest version".to_owned()
                };
                confirm_page(
                    &s,
                    &row,
                    &url,
                    "replay",
                    html! { "Replay " (ex) " from the start on " (which) "?" },
                    html! {
                        input type="hidden" name="version" value=(if original { "original" } else { "latest" });
                        p { "A new execution starts with the same trigger event." }
                    },
                )
            }
            "cancel" => confirm_page(
                &s,
                &row,
                &url,
                "cancel",
                html! { "Cancel " (ex) "?" },
                html! {
                    p { "A queued execution will not run; a running one stops at once." }
                },
            ),
            _ => confirm_page(
                &s,
                &row,
                &url,
                "skip",
                html! { "Skip " (ex) "?" },
                html! {
                    p {
                        "It stays failed (and can still be retried); the executions waiting behind it on its order key"
                        @if let Some(k) = &row.order_key { " " code { (k) } }
                        " run."
                    }
                },
            ),
        };
    }
    let back = format!("/console/executions/{id}");
    let result = match action.as_str() {
        "retry" => engine.retry(&s.tenant, &id).await.map(|_| back),
        "cancel" => engine.cancel(&s.tenant, &id).await.map(|_| back),
        "skip" => engine.skip(&s.tenant, &id).await.map(|_| back),
        _ => match engine.replay_on(&s.tenant, &id, original).await {
            Ok(sub) => Ok(format!("/console/executions/{}", sub.id)),
            Err(flowgate_engine::ReplayError::Store(e)) => Err(e),
            Err(flowgate_engine::ReplayError::Submit(e)) => {
                return layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "Not replayed", &e.to_string());
            }
        },
    };
    match result {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) => store_error(e, &id, &action, "execution"),
    }
}

/// `POST /console/executions/{id}/deliveries/{delivery}/resend`: sends one of the
/// execution's outbound deliveries again (same message id), as `POST /v1/deliveries/{id}/resend`.
pub(crate) async fn resend(
    State(c): State<Console>,
    s: Session,
    Path((id, delivery)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let form = read_form(&body);
    if let Some(refused) = session::check_csrf(&s, form.csrf.as_deref()) {
        return refused;
    }
    let engine = c.engine();
    let row = match engine.store().execution(Some(&s.tenant), &id).await {
        Ok(Some(r)) => r,
        Ok(None) => return layout::not_found("There is no such execution."),
        Err(e) => return store_error(e, &id, "resend", "execution"),
    };
    // Only a delivery of this execution (and so of this tenant).
    let view = match engine.delivery_view(&s.tenant, &delivery).await {
        Ok(Some(v)) if v["executionId"] == id.as_str() => v,
        Ok(_) => return layout::not_found("There is no such delivery."),
        Err(e) => return store_error(e, &id, "resend", "delivery"),
    };
    if form.confirmed.as_deref() != Some("yes") {
        let url = format!("/console/executions/{id}/deliveries/{delivery}/resend");
        let name = view["name"].as_str().unwrap_or_default();
        let kind = view["kind"].as_str().unwrap_or_default();
        return confirm_page(
            &s,
            &row,
            &url,
            "resend",
            html! {
                "Resend " (kind) " delivery " span.id { (delivery) } @if !name.is_empty() { " (" (name) ")" } "?"
            },
            html! {
                p { "It is sent again with the same message id, so the receiver can tell it is the same message." }
            },
        );
    }
    match engine.resend(&s.tenant, &delivery).await {
        Ok(_) => Redirect::to(&format!("/console/executions/{id}#deliveries")).into_response(),
        Err(e) => store_error(e, &id, "resend", "delivery"),
    }
}
