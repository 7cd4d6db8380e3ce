//! Shared markup: status badges, times and durations, pretty JSON, error pages.

use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use maud::{Markup, html};

/// The icon shown with each status (the word is always shown too).
fn icon(status: &str) -> &'static str {
    match status {
        "succeeded" => "✓",
        "failed" => "✗",
        "running" => "▶",
        "queued" => "…",
        "waiting" => "⏸",
        "cancelled" => "⊘",
        "filtered" => "⊖",
        "skipped" => "↷",
        _ => "•",
    }
}

/// A status as an icon, a word and a colour (the colour is decoration only).
pub(crate) fn status_badge(status: &str) -> Markup {
    // The class only ever takes known words, never data.
    let class = match status {
        "succeeded" | "failed" | "running" | "queued" | "waiting" | "cancelled" | "filtered" | "skipped" => status,
        _ => "other",
    };
    html! {
        span class=(format!("badge st-{class}")) {
            span.icon aria-hidden="true" { (icon(status)) } " " (status)
        }
    }
}

/// A time (epoch milliseconds) as RFC 3339 in a `<time>` element.
pub(crate) fn time(ms: i64) -> Markup {
    let text = flowgate_engine::clock::rfc3339(ms);
    html! { time datetime=(text) { (text.replace('T', " ")) } }
}

/// A duration in milliseconds, in words people read at a glance.
pub(crate) fn duration(ms: i64) -> String {
    match ms {
        i64::MIN..0 => String::new(),
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// Stored JSON text, pretty-printed (as it is when it does not parse), in a `<pre>`.
pub(crate) fn json_block(text: &str) -> Markup {
    let pretty = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned());
    html! { pre.json { code { (pretty) } } }
}

/// An error page with its status.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p { (message) }
        p { a href="/console/executions" { "Back to the executions" } }
    };
    (status, Html(super::page(title, super::Nav::None, None, body).into_string())).into_response()
}

/// A 404 page.
pub(crate) fn not_found(message: &str) -> Response {
    error_page(StatusCode::NOT_FOUND, "Not found", message)
}

/// A secret shown this once (a new API token, a new tenant's first token): `intro` says what
/// it is, then a read-only field with a Copy button (the shared `data-copy` handler). The
/// page around it is never cached (`no-store`), so a reload does not show it again.
pub(crate) fn shown_once(intro: Markup, label: &str, secret: &str) -> Markup {
    html! {
        div.new-token #new-token-box role="status" {
            p { (intro) }
            div.copy-row {
                label.sr-only for="new-token" { (label) }
                input #new-token type="text" readonly value=(secret) autocomplete="off" spellcheck="false";
                button type="button" data-copy="new-token" { "Copy" }
                span.copied aria-live="polite" {}
            }
        }
    }
}
