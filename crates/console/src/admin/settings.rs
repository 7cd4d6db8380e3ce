//! The settings page: API tokens, SMTP, log sources, each a section with its forms; and what
//! the forms share (reading a form, the confirmation page, the outcome notes).

use super::logs::{self, LogValues};
use super::smtp::{self, SmtpValues};
use super::tokens;
use crate::Console;
use crate::layout::{self, Nav};
use crate::session::Session;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The outcome of a form, shown at the top of its section.
pub(super) enum Note {
    /// It worked.
    Done(String),
    /// It did not, and why.
    Failed(String),
}

impl Note {
    pub(super) fn show(&self) -> Markup {
        match self {
            Note::Done(m) => html! { p.note.done role="status" { span aria-hidden="true" { "✓ " } (m) } },
            Note::Failed(m) => html! { p.note.error role="alert" { span aria-hidden="true" { "✗ " } (m) } },
        }
    }
}

/// What a render of the page shows beyond the stored state: notes, a new token (once), the
/// values of a form refused (so they need not be typed again).
#[derive(Default)]
pub(super) struct Shown {
    pub(super) new_token: Option<(String, String)>,
    pub(super) tokens: Option<Note>,
    pub(super) token_name: Option<String>,
    pub(super) smtp: Option<Note>,
    pub(super) smtp_values: Option<SmtpValues>,
    pub(super) logs: Option<Note>,
    pub(super) log_values: Option<LogValues>,
}

#[derive(Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
}

/// `GET /console/settings` (`?done=…` after a form: a fixed message, never the parameter).
pub(crate) async fn page(State(c): State<Console>, s: Session, Query(q): Query<Done>) -> Response {
    let mut shown = Shown::default();
    let done = |m: &str| Some(Note::Done(m.to_owned()));
    match q.done.as_deref() {
        Some("token-revoked") => shown.tokens = done("Token revoked: it no longer opens the API or the console."),
        Some("smtp-saved") => shown.smtp = done("SMTP settings saved."),
        Some("smtp-removed") => {
            shown.smtp = done("SMTP settings removed: e-mails go through the server's relay, if it has one.")
        }
        Some("source-saved") => shown.logs = done("Log source saved."),
        Some("source-deleted") => shown.logs = done("Log source deleted."),
        _ => {}
    }
    render(&c, &s, shown, StatusCode::OK).await
}

/// The whole page with `shown`, answered with `status`.
pub(super) async fn render(c: &Console, s: &Session, shown: Shown, status: StatusCode) -> Response {
    let engine = c.engine();
    let tokens = match engine.store().tokens(&s.tenant).await {
        Ok(t) => t,
        Err(e) => return unavailable("list the API tokens", &e.to_string()),
    };
    let smtp = engine.tenant_smtp(&s.tenant).await;
    let sources = match engine.log_sources(&s.tenant).await {
        Ok(v) => v,
        Err(e) => return unavailable("list the log sources", &e.to_string()),
    };
    let body = html! {
        h1 { "Settings" }
        nav.settings-toc aria-label="Settings sections" {
            a href="#tokens" { "API tokens" } a href="#smtp" { "SMTP" } a href="#log-sources" { "Log sources" }
        }
        (tokens::section(s, &tokens, &shown))
        (smtp::section(s, &smtp, engine.has_smtp_relay(), &shown))
        (logs::section(s, &sources, &shown))
    };
    (status, Html(layout::page("Settings", Nav::Settings, Some((&s.tenant, &s.csrf)), body).into_string()))
        .into_response()
}

/// A 503 page for a store that did not answer.
pub(super) fn unavailable(what: &str, error: &str) -> Response {
    tracing::error!(error, "Console settings: cannot {what}.");
    layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The database did not answer; try again.")
}

/// A form's fields; a body that does not parse gives `T::default()` (every field is
/// optional, and the CSRF check refuses it).
pub(super) fn form<T: DeserializeOwned + Default>(body: &[u8]) -> T {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// A form field's text, trimmed; `None` when empty.
pub(super) fn filled(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// The confirmation page of a destructive form: the question, and the form that does it
/// (posting `confirmed=yes` to `action`).
pub(super) fn confirm(s: &Session, title: &str, question: Markup, action: &str, button: &str, back: &str) -> Response {
    let body = html! {
        section.confirm #confirm aria-labelledby="confirm-question" {
            h1 #confirm-question { (question) }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(s.csrf);
                input type="hidden" name="confirmed" value="yes";
                div.actions {
                    button.danger type="submit" { (button) }
                    a href=(back) { "Cancel" }
                }
            }
        }
    };
    Html(layout::page(title, Nav::Settings, Some((&s.tenant, &s.csrf)), body).into_string()).into_response()
}

/// A path segment (percent-encoded).
pub(super) fn segment(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|q| q[1..].replace('+', "%20")).unwrap_or_default()
}
