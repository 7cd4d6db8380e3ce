//! One execution, `/console/executions/{id}`: its summary (status, flow, trigger, times,
//! error), a timeline of its steps and their attempts drawn to scale, the steps journal with
//! each attempt's input, output and error as collapsible pretty JSON (loop items and
//! parallel branches grouped under their step), the executions its `call` steps started, its
//! outbound deliveries with their attempts and a Resend button, the log, and the Retry /
//! Replay / Cancel / Skip buttons (each confirmed first, see `actions.rs`).
//!
//! Reads what `GET /v1/executions/{id}` reads, in the same way (the tenant-scoped row, the
//! journal with its inputs filled in, the log, the children, the deliveries), within the
//! node's memory budget like the API. Stored step data already holds markers in place of
//! secrets; it is shown as the API shows it.

use crate::Console;
use crate::layout::{self, Nav};
use crate::session::Session;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use flowgate_store::{ExecutionRow, Status, StepRecord};
use http::StatusCode;
use maud::{Markup, html};
use serde_json::Value;

/// Item entries drawn in the timeline per loop or parallel step (the steps list has them all).
const TIMELINE_ITEMS: usize = 30;

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

/// A step of the flow with its journal entries: its own (one per attempt and round) and,
/// for a loop or parallel step, its items' (`each[3].push`, `each[3]`, `both[a].fetch`).
struct Group<'a> {
    own: Vec<&'a StepRecord>,
    items: Vec<&'a StepRecord>,
}

/// The flow-level step an entry belongs to: its key up to the first `[`.
fn top_of(step_id: &str) -> &str {
    step_id.split_once('[').map_or(step_id, |(top, _)| top)
}

/// The entries grouped by flow-level step, in the order the steps first appear.
fn group(steps: &[StepRecord]) -> Vec<(&str, Group<'_>)> {
    let mut groups: Vec<(&str, Group<'_>)> = Vec::new();
    for st in steps {
        let top = top_of(&st.step_id);
        let at = match groups.iter().position(|(t, _)| *t == top) {
            Some(i) => i,
            None => {
                groups.push((top, Group { own: Vec::new(), items: Vec::new() }));
                groups.len() - 1
            }
        };
        if st.step_id == top { groups[at].1.own.push(st) } else { groups[at].1.items.push(st) }
    }
    groups
}

/// Only known words become classes.
fn status_class(status: &str) -> &'static str {
    match status {
        "succeeded" | "continued" => "succeeded",
        "failed" => "failed",
        "running" => "running",
        "queued" => "queued",
        "waiting" => "waiting",
        "cancelled" => "cancelled",
        "skipped" | "filtered" => "skipped",
        _ => "other",
    }
}

/// The `code` of a stored error (JSON with `code` and `message`), if it has one.
fn error_code(e: &str) -> Option<String> {
    serde_json::from_str::<Value>(e).ok()?.get("code")?.as_str().map(str::to_owned)
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
    let (logs, children, deliveries) =
        tokio::try_join!(store.logs(id), store.children(&s.tenant, id), c.engine().deliveries_of(id))?;
    let flow_name = c
        .engine()
        .integration(&s.tenant, &row.integration)
        .await?
        .and_then(|ci| ci.flows.get(&row.flow).and_then(|f| f.name.clone()));
    let error: Option<Value> = row.error.as_deref().and_then(|e| serde_json::from_str(e).ok());
    let text = |v: &Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let groups = group(&steps);
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
            @if let Some(p) = &row.parent_id { dt { "Called by" } dd { a #parent href=(format!("/console/executions/{p}")) { (p) } } }
            @if let Some(k) = &row.order_key {
                dt { "Order key" } dd { code { (k) } @if row.holds_order && row.status == "failed" { " — blocks the executions after it" } }
            }
        }
        @if let Some(e) = &error {
            section.error #error role="alert" {
                h2 { "Error" }
                p {
                    @if let Some(code) = text(e, "code") { code.code { (code) } " " }
                    @if let Some(step) = text(e, "step").or_else(|| row.failed_step.clone()) { "at step " strong { (step) } ": " }
                    (text(e, "message").unwrap_or_default())
                }
            }
        }
        h2 #timeline-title { "Timeline" }
        (timeline(&row, &groups))
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
            @for (top, g) in &groups {
                @for st in &g.own { (step_item(st, "step")) }
                @if !g.items.is_empty() {
                    li.items data-step=(top) {
                        details {
                            summary { (g.items.len()) " item and branch entries of " strong { (top) } }
                            ol.steps.nested { @for st in &g.items { (step_item(st, "step item")) } }
                        }
                    }
                }
            }
        }
        @if !children.is_empty() {
            h2 { "Executions it called" }
            div.scroll {
                table #children.list {
                    caption.sr-only { "Executions started by this one's call steps" }
                    thead { tr {
                        th scope="col" { "Time (UTC)" } th scope="col" { "Integration" } th scope="col" { "Flow" }
                        th scope="col" { "Status" } th scope="col" { "Trigger" } th scope="col" { "Duration" }
                        th scope="col" { "Execution" }
                    } }
                    tbody { @for ch in &children { (super::row::render(ch)) } }
                }
            }
        }
        @if !deliveries.is_empty() {
            h2 #deliveries-title { "Outbound deliveries" }
            ol.deliveries #deliveries { @for d in &deliveries { (delivery(&row.id, d, &s.csrf)) } }
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

/// One journal entry: the step, its status, round, attempt, duration, error code, and its
/// input, output and error as collapsible JSON.
fn step_item(st: &StepRecord, class: &str) -> Markup {
    let code = st.error.as_deref().and_then(error_code);
    html! {
        li class=(class) data-step=(st.step_id) data-status=(st.status) {
            div.step-head {
                strong.step-id { (st.step_id) }
                " " (layout::status_badge(&st.status))
                span.sub { " round " (st.round) ", attempt " (st.attempt) ", " (layout::duration(st.finished_at - st.started_at)) }
                @if let Some(c) = &code { " " code.code { (c) } }
            }
            @if let Some(i) = &st.input { details { summary { "Input" } (layout::json_block(i)) } }
            @if let Some(o) = &st.output { details { summary { "Output" } (layout::json_block(o)) } }
            @if let Some(e) = &st.error { details.step-error open { summary { "Error" } (layout::json_block(e)) } }
        }
    }
}

/// The timeline: one bar per journal entry, placed and sized on one scale from the first
/// start to the last finish (SVG `x`/`width` in thousandths of that span; no inline style).
fn timeline(row: &ExecutionRow, groups: &[(&str, Group<'_>)]) -> Markup {
    let all = || groups.iter().flat_map(|(_, g)| g.own.iter().chain(g.items.iter()));
    let Some(first) = all().map(|s| s.started_at).min() else {
        return html! { p.empty #timeline { "No step has run yet." } };
    };
    let start = row.started_at.map_or(first, |t| t.min(first));
    let end = all().map(|s| s.finished_at).max().unwrap_or(start).max(row.finished_at.unwrap_or(start));
    let span = (end - start).max(1);
    let bar = |st: &StepRecord| {
        // At least a sliver (3 of 1000) so an instant step still shows, never past the end.
        let x = ((st.started_at - start) * 1000 / span).clamp(0, 997);
        let w = (((st.finished_at - st.started_at).max(0) * 1000 + span - 1) / span).max(3).min(1000 - x);
        (x, w)
    };
    let entry = |st: &StepRecord, item: bool| {
        let (x, w) = bar(st);
        html! {
            li class=(if item { "tl-row item" } else { "tl-row" }) data-step=(st.step_id) data-status=(st.status) {
                span.tl-label {
                    span.step-id { (st.step_id) }
                    @if st.attempt > 1 || st.round > 1 { span.sub { " attempt " (st.attempt) @if st.round > 1 { ", round " (st.round) } } }
                }
                svg.tl-bar viewBox="0 0 1000 10" preserveAspectRatio="none" aria-hidden="true" focusable="false" {
                    rect.tl-track x="0" y="0" width="1000" height="10" {}
                    rect class=(format!("tl-fill st-{}", status_class(&st.status))) x=(x) y="0" width=(w) height="10" data-x=(x) data-w=(w) {}
                }
                span.tl-time { (layout::status_badge(&st.status)) " " (layout::duration(st.finished_at - st.started_at)) }
            }
        }
    };
    html! {
        figure.timeline #timeline aria-labelledby="timeline-title" {
            figcaption.sub {
                "From " (layout::time(start)) " to " (layout::time(end)) ": " (layout::duration(end - start))
                ", every bar on the same scale."
            }
            ol.tl {
                @for (top, g) in groups {
                    @for st in &g.own { (entry(st, false)) }
                    @if g.own.is_empty() && !g.items.is_empty() {
                        li.tl-row.tl-group data-step=(top) { span.tl-label { span.step-id { (top) } span.sub { " (running)" } } }
                    }
                    @for st in g.items.iter().take(TIMELINE_ITEMS) { (entry(st, true)) }
                    @if g.items.len() > TIMELINE_ITEMS {
                        li.tl-row.item.tl-more { span.sub { "… and " (g.items.len() - TIMELINE_ITEMS) " more entries of " (top) " (under Steps)" } }
                    }
                }
            }
        }
    }
}

/// An outbound delivery with its attempts and, once it has ended, a Resend button.
fn delivery(execution: &str, d: &Value, csrf: &str) -> Markup {
    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let id = s("id");
    let status = s("status");
    let history = d.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
    html! {
        li.delivery id=(format!("dl-{id}")) data-status=(status) {
            div.step-head {
                strong { (s("kind")) } @if !s("name").is_empty() { " " (s("name")) }
                " " (layout::status_badge(&status))
                span.sub {
                    " " span.id { (id) }
                    @if !s("stepId").is_empty() { ", step " (s("stepId")) }
                    ", " (d.get("attempts").and_then(Value::as_i64).unwrap_or(0)) " attempts"
                    @if let Some(n) = d.get("nextAttemptAt").and_then(Value::as_str) { ", next at " (n) }
                }
            }
            @if let Some(e) = d.get("lastError").and_then(Value::as_str) { p.error { (e) } }
            @if !history.is_empty() {
                details {
                    summary { "Attempts (" (history.len()) ")" }
                    div.scroll {
                        table.list.attempts {
                            thead { tr { th scope="col" { "#" } th scope="col" { "At (UTC)" } th scope="col" { "Status" } th scope="col" { "Latency" } th scope="col" { "Response or error" } } }
                            tbody {
                                @for a in &history {
                                    tr {
                                        td data-label="#" { (a.get("attempt").and_then(Value::as_i64).unwrap_or(0)) }
                                        td data-label="At" { (a.get("at").and_then(Value::as_str).unwrap_or_default()) }
                                        td data-label="Status" { @if let Some(c) = a.get("status").and_then(Value::as_i64) { (c) } }
                                        td data-label="Latency" { @if let Some(l) = a.get("latencyMs").and_then(Value::as_i64) { (layout::duration(l)) } }
                                        td data-label="Response or error" {
                                            @if let Some(e) = a.get("error").and_then(Value::as_str) { span.error { (e) } " " }
                                            @if let Some(x) = a.get("excerpt").and_then(Value::as_str) { code { (x) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if matches!(status.as_str(), "delivered" | "failed") {
                form.action method="post" action=(format!("/console/executions/{execution}/deliveries/{id}/resend")) {
                    input type="hidden" name="csrf" value=(csrf);
                    button.secondary type="submit" title="Send it again, with the same message id" { "Resend" }
                }
            }
        }
    }
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
/// session's CSRF token; each leads to a confirmation first.
fn buttons(row: &ExecutionRow, csrf: &str) -> Markup {
    let status = Status::parse(&row.status);
    let finished = status.is_some_and(Status::is_final);
    let retryable = matches!(status, Some(Status::Failed | Status::Cancelled));
    let blocks = row.holds_order && status == Some(Status::Failed);
    let form = |action: &str, label: &str, hint: &str| {
        html! {
            form.action method="post" action=(format!("/console/executions/{}/{action}", row.id)) {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" title=(hint) { (label) }
            }
        }
    };
    html! {
        div.actions role="group" aria-label="Actions" {
            @if retryable {
                (form("retry", "Retry", &format!("Resume from the failed step{}; completed steps are not run again",
                    row.failed_step.as_deref().map(|s| format!(" ({s})")).unwrap_or_default())))
            }
            @if finished {
                form.action.replay method="post" action=(format!("/console/executions/{}/replay", row.id)) {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="replay-version" { "Replay on " }
                    select #replay-version name="version" {
                        option value="latest" selected { "the latest version" }
                        option value="original" { "its original version (" (row.version) ")" }
                    }
                    " "
                    button type="submit" title="Run again from the start with the same trigger event" { "Replay" }
                }
            }
            @if !finished { (form("cancel", "Cancel", "Stop this execution")) }
            @if blocks { (form("skip", "Skip", "Let the executions waiting behind it on its order key run; it stays failed")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(step: &str, seq: i64) -> StepRecord {
        StepRecord {
            execution_id: "ex".into(),
            step_id: step.into(),
            round: 1,
            attempt: 1,
            seq,
            status: "succeeded".into(),
            input: None,
            output: None,
            error: None,
            response: None,
            started_at: seq,
            finished_at: seq + 1,
        }
    }

    #[test]
    fn loop_items_are_grouped_under_their_step() {
        let steps = [
            rec("shape", 1),
            rec("each[0].push", 2),
            rec("each[0]", 3),
            rec("each[1].push", 4),
            rec("each", 5),
            rec("done", 6),
        ];
        let g = group(&steps);
        let tops: Vec<_> = g.iter().map(|(t, g)| (*t, g.own.len(), g.items.len())).collect();
        assert_eq!(tops, [("shape", 1, 0), ("each", 1, 3), ("done", 1, 0)]);
        assert_eq!(error_code(r#"{"code":"http_status","message":"x"}"#).as_deref(), Some("http_status"));
        assert_eq!(error_code("not json"), None);
    }
}
