//! The General panel: basics and the active switch, the trigger (webhook URL with a Copy
//! button, auth, methods, query parameters, how callers are answered; a schedule in words
//! and its next slots; the inbound address; a broker's queue, subject or topic), execution
//! settings, connections, notifications, the log source and the last execution.
//!
//! Secrets are never shown: for webhook auth only the mode, header names and key labels.

use super::{FlowView, path_part};
use crate::layout;
use flowgate_engine::{CompiledFlow, FlowTrigger};
use flowgate_model::trigger::Trigger;
use flowgate_model::{RespondMode, WebhookAuth};
use flowgate_steps::{Flow, StepConfig, StepDef};
use maud::{Markup, html};

/// Next schedule slots shown.
const NEXT_RUNS: usize = 5;

pub(super) fn render(view: &FlowView, def: &Flow, f: &CompiledFlow, csrf: &str) -> Markup {
    html! {
        div.general {
            div.col {
                (basics(view, def, f, csrf))
                (last_execution(view))
                (connections(view, def))
            }
            div.col {
                (trigger(view, def, f))
                (settings(def))
                (notifications(def))
            }
        }
    }
}

fn on_off(on: bool, yes: &str, no: &str) -> Markup {
    if on {
        html! { span.badge.st-succeeded { span.icon aria-hidden="true" { "●" } " " (yes) } }
    } else {
        html! { span.badge.st-other { span.icon aria-hidden="true" { "○" } " " (no) } }
    }
}

fn basics(view: &FlowView, def: &Flow, f: &CompiledFlow, csrf: &str) -> Markup {
    let ci = &view.ci;
    let action = format!("{}/active", super::flow_url(&ci.record.slug, &f.slug));
    html! {
        section.card #basics aria-labelledby="h-basics" {
            h2 #h-basics { "Basics" }
            dl.fields {
                dt { "Name" } dd #flow-name { (def.name.as_deref().unwrap_or("—")) }
                dt { "Flow" } dd { code { (f.slug) } }
                dt { "Integration" } dd {
                    code { (ci.record.slug) } " "
                    span.sub { "version " (ci.record.version) }
                    @if let Some(n) = &ci.definition.name { " — " (n) }
                }
                dt { "Description" } dd #flow-description {
                    @if let Some(d) = &def.description { p.prose { (d) } } @else { span.sub { "none" } }
                }
                dt { "Active" } dd #flow-active {
                    form.switch method="post" action=(action) {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="active" value=(if view.active { "false" } else { "true" });
                        (on_off(view.active, "active", "inactive"))
                        " "
                        button type="submit" aria-describedby="active-help" {
                            @if view.active { "Deactivate" } @else { "Activate" }
                        }
                    }
                    p.sub #active-help {
                        @if view.active { "Deactivating stops its trigger on every node at once" }
                        @else { "An inactive flow does not run: its webhook answers 404, its schedule stops" }
                        @if view.active != def.active {
                            " (switched here or with " code { "flowgate flows " (if view.active { "activate" } else { "deactivate" }) } "; the definition says "
                            code { "active: " (def.active) } ")"
                        }
                        "."
                    }
                }
                dt { "Integration live" } dd #integration-live {
                    (on_off(ci.live(), "live", "not live"))
                    @if !ci.deployed {
                        span.sub { " — undeployed: its triggers do not fire" }
                    } @else if !ci.missing.is_empty() {
                        span.sub { " — required config values are not set: " (ci.missing.join(", ")) }
                    }
                }
            }
        }
    }
}

/// A value with a Copy button (the script copies the element's text).
fn copyable(id: &str, label: &str, value: &str) -> Markup {
    html! {
        div.copy-row {
            code.copy-value id=(id) { (value) }
            button type="button" data-copy=(id) aria-label=(format!("Copy the {}", label.to_lowercase())) { "Copy" }
            span.copied id=(format!("{id}-copied")) role="status" aria-live="polite" {}
        }
    }
}

fn trigger(view: &FlowView, def: &Flow, f: &CompiledFlow) -> Markup {
    html! {
        section.card #trigger aria-labelledby="h-trigger" {
            h2 #h-trigger { "Trigger" }
            dl.fields {
                dt { "Type" } dd #trigger-kind { code { (f.trigger.kind()) } }
                @match (&f.trigger, &def.trigger) {
                    (FlowTrigger::Webhook(w), Trigger::Webhook(dw)) => {
                        dt { "Webhook URL" }
                        dd { (copyable("webhook-url", "Webhook URL", &flowgate_engine::compile::webhook_url(&view.public_url, &f.tenant, &w.path))) }
                        dt { "Methods" } dd #webhook-methods {
                            @for (i, m) in w.methods.iter().enumerate() { @if i > 0 { ", " } code { (m.as_str()) } }
                        }
                        dt { "Auth" } dd #webhook-auth { (auth(dw.auth.as_ref())) }
                        @if let Some(v) = &w.verify {
                            dt { "Signature" } dd { "checked: " code { (v.describe()["scheme"].as_str().unwrap_or("")) } }
                        }
                        dt { "Query parameters" } dd #webhook-query {
                            @if w.query.is_empty() { span.sub { "none declared (any are passed on)" } } @else {
                                table.params {
                                    caption.sr-only { "Declared query parameters" }
                                    thead { tr { th scope="col" { "Name" } th scope="col" { "Default" } th scope="col" { "Required" } th scope="col" { "What for" } } }
                                    tbody {
                                        @for (name, p) in &w.query {
                                            tr {
                                                td { code { (name) } }
                                                td { @if let Some(d) = &p.default { code { (d) } } @else { span.sub { "—" } } }
                                                td { (if p.required { "yes" } else { "no" }) }
                                                td { (p.description.as_deref().unwrap_or("")) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        dt { "Response" } dd #webhook-respond {
                            @match w.respond.mode {
                                RespondMode::Async => { code { "async" } ": 202 with the execution id as soon as the event is stored" }
                                RespondMode::Sync => { code { "sync" } ": request-response — the caller waits up to " (w.respond.timeout) " for a " code { "respond" } " step or the end" }
                            }
                        }
                        dt { "Deduplication" } dd {
                            @if let Some(k) = &dw.dedup_key { "by " code { (k) } } @else { "by the " code { "Idempotency-Key" } " header, when sent" }
                            span.sub { " — remembered " (dw.dedup_window.map_or("24h".to_owned(), |d| d.to_string())) }
                        }
                    }
                    (FlowTrigger::Schedule(_) | FlowTrigger::Poll(_), _) => {
                        (schedule(view, def, f))
                    }
                    (FlowTrigger::Email(e), Trigger::Email(de)) => {
                        dt { "Inbound address" }
                        dd { (copyable("email-address", "Inbound e-mail address", &f.email_address(&view.mail_domain).unwrap_or_default())) }
                        dt { "Accepted senders" } dd {
                            @if e.allow_from.is_empty() { "anyone" } @else {
                                @for (i, p) in e.allow_from.iter().enumerate() { @if i > 0 { ", " } code { (p) } }
                            }
                        }
                        dt { "Deduplication" } dd {
                            @if let Some(k) = &de.dedup_key { "by " code { (k) } span.sub { " — remembered " (de.dedup_window.map_or("24h".to_owned(), |d| d.to_string())) } }
                            @else { "none: every message runs" }
                        }
                    }
                    (FlowTrigger::Broker(b), _) => {
                        @let d = b.describe();
                        dt { "Connection" } dd { code { (b.connection) } }
                        @for (key, label) in [("queue", "Queue"), ("stream", "Stream"), ("consumer", "Consumer"), ("subject", "Subject"), ("topic", "Topic"), ("qos", "QoS"), ("prefetch", "Prefetch")] {
                            @if let Some(v) = d.get(key).filter(|v| !v.is_null()) {
                                dt { (label) } dd { code { (v.as_str().map_or_else(|| v.to_string(), str::to_owned)) } }
                            }
                        }
                    }
                    (FlowTrigger::Manual, _) => {
                        dt { "Runs" } dd { "only when started: " code { "flowgate flows run" } ", the API, or " em { "Try it" } }
                    }
                    (FlowTrigger::Deploy, _) => { dt { "Runs" } dd { "when the integration is deployed, upgraded or its config changes" } }
                    (FlowTrigger::Undeploy, _) => { dt { "Runs" } dd { "when the integration is undeployed or deleted" } }
                    _ => {}
                }
            }
        }
    }
}

fn auth(a: Option<&WebhookAuth>) -> Markup {
    let mode = a.map_or("none", WebhookAuth::mode);
    html! {
        code { (mode) }
        @match a {
            Some(WebhookAuth::Header { name, .. }) => { span.sub { " — header " code { (name) } " must carry the expected value" } },
            Some(WebhookAuth::Bearer { .. }) => { span.sub { " — " code { "Authorization: Bearer …" } } },
            Some(WebhookAuth::Basic { username, .. }) => { span.sub { " — user " code { (username) } } },
            Some(WebhookAuth::ApiKey { header, query, keys }) => {
                span.sub {
                    " — in "
                    @if let Some(q) = query { "query parameter " code { (q) } } @else { "header " code { (header.as_deref().unwrap_or("X-Api-Key")) } }
                    "; keys: "
                    @for (i, k) in keys.iter().enumerate() { @if i > 0 { ", " } (k.label) }
                }
            },
            _ => { span.sub { " — anyone may call it" } },
        }
    }
}

fn schedule(view: &FlowView, def: &Flow, f: &CompiledFlow) -> Markup {
    let Some(sc) = f.trigger.schedule() else { return html! {} };
    // As the API: no next slots while the flow is off.
    let next = if view.active { sc.upcoming(view.now, NEXT_RUNS) } else { Vec::new() };
    html! {
        dt { "Schedule" } dd #schedule-words { (sc.describe()) span.sub { " (" (sc.timezone()) ")" } }
        @if let Trigger::Schedule(ds) = &def.trigger {
            dt { "Missed slots" } dd {
                @match ds.missed {
                    flowgate_model::Missed::Skip => { code { "skip" } ": slots missed while down do not run" },
                    flowgate_model::Missed::Last => { code { "last" } ": the latest missed slot runs once" },
                    flowgate_model::Missed::All => { code { "all" } ": every missed slot runs (at most " (ds.max_missed.unwrap_or(flowgate_model::trigger::DEFAULT_MAX_MISSED)) ")" },
                }
            }
        }
        @if let (FlowTrigger::Poll(p), Trigger::Poll(dp)) = (&f.trigger, &def.trigger) {
            dt { "Polls" } dd {
                code { (dp.request.get("method").and_then(|m| m.as_str()).unwrap_or("GET")) } " "
                code { (dp.request.get("url").and_then(|m| m.as_str()).unwrap_or("")) }
                span.sub { " — at most " (p.max_pages) " pages; items " code { (dp.items) } }
            }
        }
        dt { "Next runs" } dd {
            @if next.is_empty() {
                span.sub { @if view.active { "none" } @else { "none while the flow is inactive" } }
            } @else {
                ol.next-runs #next-runs { @for t in &next { li { (layout::time(*t)) } } }
            }
        }
    }
}

fn settings(def: &Flow) -> Markup {
    html! {
        section.card #settings aria-labelledby="h-settings" {
            h2 #h-settings { "Execution" }
            dl.fields {
                dt { "Order" } dd #flow-order {
                    @if let Some(by) = &def.order_by { "ordered per key " code { (by) } }
                    @else if def.ordered { "ordered: one at a time, in arrival order" }
                    @else { "unordered: executions run side by side" }
                    @if def.ordered || def.order_by.is_some() {
                        span.sub { " — when one fails for good: " code { (match def.on_exhausted { flowgate_model::OnExhausted::Block => "block", flowgate_model::OnExhausted::Skip => "skip" }) } }
                    }
                }
                dt { "Concurrency" } dd { @if let Some(n) = def.concurrency { "at most " (n) " at once" } @else { "no limit" } }
                dt { "Timeout" } dd { @if let Some(t) = def.timeout { (t) } @else { "none" } }
                dt { "Retry" } dd { (super::steps::retry_words(def.retry.as_ref())) @if def.retry.is_none() { span.sub { " (default)" } } }
                dt { "Diagnostics" } dd { code { (match def.diagnostics {
                    flowgate_model::Diagnostics::Full => "full",
                    flowgate_model::Diagnostics::Errors => "errors",
                    flowgate_model::Diagnostics::Minimal => "minimal",
                }) } }
            }
        }
    }
}

/// Connection names the flow uses: its own two, its trigger's and its steps'.
fn used_connections(def: &Flow) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, role: String| {
        if let Some(e) = out.iter_mut().find(|(n, _)| n == name) {
            e.1.push_str(&format!(", {role}"));
        } else {
            out.push((name.to_owned(), role));
        }
    };
    if let Some(c) = &def.connection {
        add(c, "primary".into());
    }
    if let Some(c) = &def.connection2 {
        add(c, "secondary".into());
    }
    match &def.trigger {
        Trigger::Amqp(t) => add(&t.connection, "trigger".into()),
        Trigger::Nats(t) => add(&t.connection, "trigger".into()),
        Trigger::Mqtt(t) => add(&t.connection, "trigger".into()),
        _ => {}
    }
    fn walk(steps: &[StepDef], add: &mut dyn FnMut(&str, String)) {
        for s in steps {
            let named = match &s.kind {
                StepConfig::Http(c) => c.connection.as_deref(),
                StepConfig::Sql(c) => c.connection.as_deref(),
                StepConfig::Dynamics(c) => c.connection.as_deref(),
                StepConfig::Quickbooks(c) => c.connection.as_deref(),
                StepConfig::Amqp(c) => c.connection.as_deref(),
                StepConfig::Nats(c) => c.connection.as_deref(),
                StepConfig::Mqtt(c) => c.connection.as_deref(),
                _ => None,
            };
            if let Some(n) = named {
                add(n, format!("step {}", s.id()));
            }
            for (_, children) in flowgate_model::StepKind::children(&s.kind) {
                walk(children, add);
            }
        }
    }
    walk(&def.steps, &mut add);
    out
}

fn connections(view: &FlowView, def: &Flow) -> Markup {
    let used = used_connections(def);
    let integration = format!("/console/integrations/{}", path_part(&view.ci.record.slug));
    html! {
        section.card #connections aria-labelledby="h-connections" {
            h2 #h-connections { "Connections" }
            @if used.is_empty() { p.empty { "This flow uses no connection." } } @else {
                ul.plain {
                    @for (name, role) in &used {
                        li {
                            a href=(format!("{integration}#connections")) { code { (name) } }
                            @if let Some(c) = view.ci.definition.connections.get(name) { " " span.kind { (c.kind()) } }
                            span.sub { " — " (role) }
                        }
                    }
                }
            }
        }
    }
}

fn notifications(def: &Flow) -> Markup {
    let emails: Vec<&str> =
        def.notify_emails.as_deref().unwrap_or("").split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    html! {
        section.card #notifications aria-labelledby="h-notifications" {
            h2 #h-notifications { "Notifications and logging" }
            dl.fields {
                dt { "E-mail on failure" } dd #notify-emails {
                    @if emails.is_empty() { span.sub { "nobody" } } @else {
                        @for (i, e) in emails.iter().enumerate() { @if i > 0 { ", " } (e) }
                        @if def.notify_on_recovery { span.sub { " — and when it succeeds again" } }
                    }
                }
                dt { "Log source" } dd #log-source {
                    @if let Some(l) = &def.log_source { code { (l) } span.sub { " — its events stream there" } } @else { span.sub { "none" } }
                }
            }
        }
    }
}

fn last_execution(view: &FlowView) -> Markup {
    html! {
        section.card #last-execution aria-labelledby="h-last" {
            h2 #h-last { "Last execution" }
            @match &view.last {
                None => p.empty { "It has not run yet." },
                Some((r, logs)) => {
                    dl.fields {
                        dt { "When" } dd { (layout::time(r.finished_at.or(r.started_at).unwrap_or(r.created_at))) }
                        dt { "Status" } dd { a href=(format!("/console/executions/{}", path_part(&r.id))) { (layout::status_badge(&r.status)) " " span.id { (r.id) } } }
                        dt { "Trigger" } dd { (r.trigger_kind) }
                        @if let (Some(a), Some(b)) = (r.started_at, r.finished_at) { dt { "Duration" } dd { (layout::duration(b - a)) } }
                    }
                    @if let Some(e) = r.error.as_deref().and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok()) {
                        p.error role="note" {
                            "Error in step " strong { (r.failed_step.as_deref().unwrap_or("-")) } ": " (e["message"].as_str().unwrap_or(""))
                        }
                    }
                    details.last-log open[logs.len() <= 8] {
                        summary { "Log (" (logs.len()) (if logs.len() == 1 { " line)" } else { " lines)" }) }
                        @if logs.is_empty() { p.empty { "No log lines." } } @else {
                            ol.log {
                                @for l in logs {
                                    li { (layout::time(l.at)) " " span.level { "[" (l.level) "]" } " "
                                         @if let Some(st) = &l.step_id { span.sub { (st) ": " } } (l.message) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
