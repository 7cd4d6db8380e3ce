//! The log sources section: the tenant's log sources (SIEM sinks) with the counters of this
//! node's sink, a form to add or replace one, and deletion after a confirmation. The calls of
//! `GET/PUT/DELETE /v1/log-sources/{name}` (`Engine::log_sources`, `put_log_source`,
//! `delete_log_source`). Headers of `http` sources are set through the API (shown here
//! redacted, as the API shows them).

use super::settings::{self, Note, Shown, confirm, filled, form, render, segment};
use crate::Console;
use crate::layout;
use crate::session::{self, Session};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

/// The add form's values, kept when it is refused.
#[derive(Default, Clone)]
pub(super) struct LogValues {
    name: String,
    kind: String,
    target: String,
}

const KINDS: [(&str, &str); 3] = [
    ("syslog", "syslog (udp:// or tcp:// URL)"),
    ("http", "HTTP (http:// or https:// URL, JSON lines in batches)"),
    ("file", "file (a path on the server)"),
];

/// A counter of a source's stats, as a number to show.
fn counter(stats: &Value, field: &str) -> String {
    stats[field].as_u64().map_or_else(|| "—".to_owned(), |n| n.to_string())
}

/// The section.
pub(super) fn section(s: &Session, sources: &[Value], shown: &Shown) -> Markup {
    let values = shown.log_values.clone().unwrap_or_default();
    let kind = if values.kind.is_empty() { "syslog" } else { values.kind.as_str() };
    html! {
        section.settings #log-sources aria-labelledby="log-sources-title" {
            h2 #log-sources-title { "Log sources" }
            p.sub { "Where the tenant's execution logs are also sent (syslog, HTTP, a file). "
                "Counters are this server's since it started or the source last changed." }
            @if let Some(n) = &shown.logs { (n.show()) }
            @if sources.is_empty() {
                p.empty { "No log sources." }
            } @else {
                div.scroll {
                    table.list #log-source-list {
                        caption.sr-only { "Log sources and their counters" }
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Destination" }
                            th scope="col" { "Sent" } th scope="col" { "Dropped" } th scope="col" { "Failed attempts" }
                            th scope="col" { "Queued" } th scope="col" { "Last error" } th scope="col" { "Updated" }
                            th scope="col" { span.sr-only { "Actions" } }
                        } }
                        tbody {
                            @for src in sources {
                                @let name = src["name"].as_str().unwrap_or_default();
                                @let (kind, inner) = src["config"].as_object().and_then(|m| m.iter().next())
                                    .map_or(("unreadable", &Value::Null), |(k, v)| (k.as_str(), v));
                                @let dest = inner["url"].as_str().or(inner["path"].as_str()).unwrap_or("—");
                                @let stats = &src["stats"];
                                tr data-source=(name) {
                                    td { (name) }
                                    td { (kind) }
                                    td { code.dest { (dest) } }
                                    td.num data-counter="sent" { (counter(stats, "sent")) }
                                    td.num data-counter="dropped" { (counter(stats, "dropped")) }
                                    td.num data-counter="failedAttempts" { (counter(stats, "failedAttempts")) }
                                    td.num data-counter="queued" { (counter(stats, "queued")) }
                                    td {
                                        @match stats["lastError"].as_str() {
                                            Some(e) => { span.error { (e) } " " @if let Some(at) = stats["lastErrorAtMs"].as_i64() { span.sub { (layout::time(at)) } } },
                                            None => span.sub { "none" },
                                        }
                                    }
                                    td { (src["updatedAt"].as_str().unwrap_or_default().replace('T', " ")) }
                                    td {
                                        form.action method="post" action=(format!("/console/settings/log-sources/{}/delete", segment(name))) {
                                            input type="hidden" name="csrf" value=(s.csrf);
                                            button.danger type="submit" aria-label=(format!("Delete log source {name}")) { "Delete…" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.settings-form.grid #log-source-form method="post" action="/console/settings/log-sources" {
                input type="hidden" name="csrf" value=(s.csrf);
                div.field {
                    label for="source-name" { "Name" }
                    input #source-name type="text" name="name" required pattern="[a-z0-9_-]{1,64}" value=(values.name)
                        aria-describedby="source-name-help";
                    span.sub #source-name-help { "Lower-case letters, digits, " code { "-" } " and " code { "_" } "; an existing name is replaced." }
                }
                div.field {
                    label for="source-kind" { "Kind" }
                    select #source-kind name="kind" {
                        @for (word, label) in KINDS { option value=(word) selected[word == kind] { (label) } }
                    }
                }
                div.field.wide {
                    label for="source-target" { "URL or path" }
                    input #source-target type="text" name="target" required value=(values.target)
                        placeholder="udp://siem.example:514";
                }
                div.field.actions { button type="submit" { "Save log source" } }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct SaveForm {
    csrf: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    target: Option<String>,
}

/// `POST /console/settings/log-sources`: creates or replaces one (`PUT /v1/log-sources/{name}`).
pub(crate) async fn save(State(c): State<Console>, s: Session, body: Bytes) -> Response {
    let f: SaveForm = form(&body);
    if let Some(refused) = session::check_csrf(&s, f.csrf.as_deref()) {
        return refused;
    }
    let values = LogValues {
        name: filled(&f.name).unwrap_or_default(),
        kind: filled(&f.kind).unwrap_or_default(),
        target: filled(&f.target).unwrap_or_default(),
    };
    let config = match values.kind.as_str() {
        "syslog" | "http" => json!({ values.kind.as_str(): { "url": values.target } }),
        "file" => json!({ "file": { "path": values.target } }),
        _ => Value::Null,
    };
    let result = if values.name.is_empty() || values.target.is_empty() {
        Err("the name and the URL or path are required".to_owned())
    } else {
        match serde_json::from_value(config) {
            Ok(config) => c.engine().put_log_source(&s.tenant, &values.name, &config).await,
            Err(_) => Err("the kind must be `syslog`, `http` or `file`".to_owned()),
        }
    };
    match result {
        Ok(()) => {
            tracing::info!(tenant = %s.tenant, source = %values.name, "Console: log source saved.");
            Redirect::to("/console/settings?done=source-saved#log-sources").into_response()
        }
        Err(m) => {
            let shown = Shown { logs: Some(Note::Failed(m)), log_values: Some(values), ..Shown::default() };
            render(&c, &s, shown, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct DeleteForm {
    csrf: Option<String>,
    confirmed: Option<String>,
}

/// `POST /console/settings/log-sources/{name}/delete`: after a confirmation.
pub(crate) async fn delete(State(c): State<Console>, s: Session, Path(name): Path<String>, body: Bytes) -> Response {
    let f: DeleteForm = form(&body);
    if let Some(refused) = session::check_csrf(&s, f.csrf.as_deref()) {
        return refused;
    }
    if f.confirmed.as_deref() != Some("yes") {
        let exists = match c.engine().log_sources(&s.tenant).await {
            Ok(all) => all.iter().any(|v| v["name"] == name.as_str()),
            Err(e) => return settings::unavailable("list the log sources", &e.to_string()),
        };
        if !exists {
            return layout::not_found("There is no such log source.");
        }
        let question = html! { "Delete log source " strong { (name) } "? Logs stop going there at once." };
        let action = format!("/console/settings/log-sources/{}/delete", segment(&name));
        return confirm(&s, "Delete log source", question, &action, "Delete", "/console/settings#log-sources");
    }
    match c.engine().delete_log_source(&s.tenant, &name).await {
        Ok(true) => Redirect::to("/console/settings?done=source-deleted#log-sources").into_response(),
        Ok(false) => layout::not_found("There is no such log source."),
        Err(e) => settings::unavailable("delete a log source", &e.to_string()),
    }
}
