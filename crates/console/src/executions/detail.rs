//! One execution, `/console/executions/{id}`: its summary (status, flow, trigger, times,
//! error), the steps journal with each attempt's input, output and error as collapsible
//! pretty JSON, the log, and the Retry / Replay / Cancel buttons. Reads what
//! `GET /v1/executions/{id}` reads, in the same way (the tenant-scoped row, the journal with
//! its inputs filled in, the log), within the node's memory budget like the API.

use crate::Console;
use crate::layout::{self, Nav};
use crate::session::Session;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use flowgate_store::{ExecutionRow, Status};
use http::StatusCode;
use maud::{Markup, html};

/// `GET /console/executions/{id}`.
pub(crate) async fn page(State(c): State<Console>, s: Session, Path(id): Path<String>) -> Response {
    match render(&c, &s, &id).await {
        Ok(Some(markup)) => Html(markup.into_string()).into_response(),
        // Another tenant's execution is as absent as one that never existed.
        Ok(None) => layout::not_found("There is no such execution."),
        Err(e) => {
            tracing::error!(error = %e, execution_id = %id, "Console: cannot read an execution.");
            layout::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The database did not answer; try again.",
            )
        }
    }
}

fn unavailable() -> flowgate_store::Error {
    flowgate_store::Error::Config("too many large executions are being read; try again shortly".into())
}

async fn render(c: &Console, s: &Session, id: &str) -> Result<Option<Markup>, flowgate_store::Error> {
    let store = c.engine().store();
    let Some(row) = store.execution(Some(&s.tenant), id).await? else { return Ok(None) };
    let mut steps = store.journal(id).await?;
    // As the API: what the page holds is about its texts twice, within the memory budget.
    let size = row.trigger.len()
        + row.output.as_ref().map_or(0, String::len)
        + steps
            .iter()
            .map(|s| s.input.as_ref().map_or(0, String::len) + s.output.as_ref().map_or(0, String::len))
            .sum::<usize>();
    let _room = c.engine().reserve(size * 2).await.ok_or_else(unavailable)?;
    flowgate_store::fill_inputs(&mut steps, &row.trigger);
    let logs = store.logs(id).await?;
    let flow_name = c
        .engine()
        .integration(&s.tenant, &row.integration)
        .await?
        .and_then(|ci| ci.flows.get(&row.flow).and_then(|f| f.name.clone()));
    let error: Option<serde_json::Value> = row.error.as_deref().and_then(|e| serde_json::from_str(e).ok());
    let text = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let body = html! {
        p.crumbs { a href="/console/executions" { "← Executions" } }
        h1 { "Execution " span.id { (row.id) } }
        (buttons(&row, &s.csrf))
        dl.summary {
            dt { "Status" } dd #status { (layout::status_badge(&row.status)) }
            dt { "Integration" } dd { (row.integration) " (version " (row.version) ")" }
            dt { "Flow" } dd { (row.flow) @if let Some(n) = &flow_name { " — " span #flow-name { (n) } } }
            dt { "Trigger" } dd { (row.trigger_kind) @if let Some(l) = &row.auth_label { " (key " (l) ")" } }
            dt { "Round" } dd { (row.attempt) }
            dt { "Created" } dd { (layout::time(row.created_at)) }
            @if let Some(t) = row.started_at { dt { "Started" } dd { (layout::time(t)) } }
            @if let Some(t) = row.finished_at { dt { "Finished" } dd { (layout::time(t)) } }
            @if let Some(ms) = super::row::took(&row) { dt { "Duration" } dd { (layout::duration(ms)) } }
            @if let Some(r) = &row.replay_of { dt { "Replay of" } dd { a href=(format!("/console/executions/{r}")) { (r) } } }
        }
        @if let Some(e) = &error {
            section.error #error role="alert" {
                h2 { "Error" }
                p {
                    @if let Some(code) = text(e, "code") { code { (code) } " " }
                    @if let Some(step) = text(e, "step").or_else(|| row.failed_step.clone()) { "at step " strong { (step) } ": " }
                    (text(e, "message").unwrap_or_default())
                }
            }
        }
        details.trigger {
            summary { "Trigger event" }
            (layout::json_block(&row.trigger))
        }
        @if let Some(o) = &row.output {
            details.output { summary { "Output" } (layout::json_block(o)) }
        }
        h2 { "Steps" }
        @if steps.is_empty() { p.empty { "No step has run yet." } }
        ol.steps #steps {
            @for st in &steps {
                li.step data-step=(st.step_id) data-status=(st.status) {
                    div.step-head {
                        strong.step-id { (st.step_id) }
                        " " (layout::status_badge(&st.status))
                        span.sub { " round " (st.round) ", attempt " (st.attempt) ", " (layout::duration(st.finished_at - st.started_at)) }
                    }
                    @if let Some(i) = &st.input { details { summary { "Input" } (layout::json_block(i)) } }
                    @if let Some(o) = &st.output { details { summary { "Output" } (layout::json_block(o)) } }
                    @if let Some(e) = &st.error { details.step-error open { summary { "Error" } (layout::json_block(e)) } }
                }
            }
        }
        h2 { "Log" }
        @if logs.is_empty() { p.empty { "No log lines." } } @else {
            ol.log #log {
                @for l in &logs {
                    li class=(format!("lv-{}", level_class(&l.level))) {
                        (layout::time(l.at)) " " span.level { "[" (l.level) "]" } " "
                        @if let Some(step) = &l.step_id { span.sub { (step) ": " } }
                        (l.message)
                    }
                }
            }
        }
    };
    Ok(Some(layout::page(&format!("Execution {}", row.id), Nav::Executions, Some((&s.tenant, &s.csrf)), body)))
}

/// Only known words become classes.
fn level_class(level: &str) -> &'static str {
    match level {
        "error" => "error",
        "warn" => "warn",
        "debug" => "debug",
        _ => "info",
    }
}

/// The action buttons that apply to the execution's status, each a POST form with the
/// session's CSRF token.
fn buttons(row: &ExecutionRow, csrf: &str) -> Markup {
    let status = Status::parse(&row.status);
    let finished = status.is_some_and(Status::is_final);
    let retryable = matches!(status, Some(Status::Failed | Status::Cancelled));
    let form = |action: &str, label: &str, hint: &str| {
        html! {
            form.action method="post" action=(format!("/console/executions/{}/{action}", row.id)) {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" name="do" value=(action) title=(hint) { (label) }
            }
        }
    };
    html! {
        div.actions role="group" aria-label="Actions" {
            @if retryable { (form("retry", "Retry", "Resume from the failed step; completed steps are not run again")) }
            @if finished { (form("replay", "Replay", "Run again from the start, on the flow's current version")) }
            @if !finished { (form("cancel", "Cancel", "Stop this execution")) }
        }
    }
}
