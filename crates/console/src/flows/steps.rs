//! The Steps panel: the pipeline drawn top to bottom as nested boxes joined by CSS
//! connectors. A switch's cases and a `parallel` step's branches stand side by side, a loop's
//! body is nested in its box, a `call` links to the called flow's page. Each step shows its
//! id, kind, a one-line summary, when it runs, its retry and error policy, and — with
//! `?execution=` — its status, duration and data in that execution.
//!
//! Journal keys follow the executor: a top-level or switch step is keyed by its id, a loop's
//! steps as `<loop>[<i>].<id>`, a branch's as `<step>[<branch>].<id>` (see
//! `engine/src/executor/nested.rs`). A step inside a loop gathers every item's entries.

use super::{FlowView, Overlay, flow_url};
use crate::layout;
use flowgate_engine::{CompiledFlow, FlowTrigger};
use flowgate_model::{OnError, RetryPolicy};
use flowgate_steps::{Flow, StepConfig, StepDef};
use flowgate_store::StepRecord;
use maud::{Markup, html};
use serde_json::Value;

/// Longest summary shown on a card (the whole one is in its `title`).
const SUMMARY_MAX: usize = 110;

struct Cx<'a> {
    flow_retry: Option<&'a RetryPolicy>,
    integration: &'a str,
    overlay: Option<&'a Overlay>,
}

pub(super) fn render(view: &FlowView, def: &Flow, f: &CompiledFlow, url: &str) -> Markup {
    let cx = Cx { flow_retry: def.retry.as_ref(), integration: &view.ci.record.slug, overlay: view.overlay.as_ref() };
    let chosen = view.overlay.as_ref().map(|o| o.row.id.as_str());
    html! {
        form.exec-pick method="get" action=(format!("{url}#steps")) {
            label for="execution" { "Show an execution" }
            select #execution name="execution" {
                option value="" { "None: the flow as defined" }
                @if let Some(o) = &view.overlay && !view.recent.iter().any(|r| r.id == o.row.id) {
                    option value=(o.row.id) selected { (option_text(&o.row)) }
                }
                @for r in &view.recent {
                    option value=(r.id) selected[chosen == Some(r.id.as_str())] { (option_text(r)) }
                }
            }
            button type="submit" { "Show" }
            @if view.recent.is_empty() { span.sub { " The flow has not run yet." } }
        }
        @if let Some(note) = &view.overlay_note { p.error role="alert" #overlay-note { (note) } }
        @if let Some(o) = &view.overlay {
            p.overlay-head #overlay {
                "Execution " a href=(format!("/console/executions/{}", super::path_part(&o.row.id))) { span.id { (o.row.id) } }
                " " (layout::status_badge(&o.row.status)) " · " (layout::time(o.row.created_at))
                @if let (Some(a), Some(b)) = (o.row.started_at, o.row.finished_at) { " · " (layout::duration(b - a)) }
                @if o.row.version != f.version {
                    span.sub { " — it ran version " (o.row.version) "; the diagram shows version " (f.version) }
                }
            }
        }
        div.diagram #diagram {
            div.terminal.start {
                span.icon aria-hidden="true" { "▶" } " "
                strong { "Trigger" } " " code { (f.trigger.kind()) } " "
                span.sub { (trigger_summary(view, f)) }
                @if let Some(o) = &view.overlay {
                    details { summary { "Trigger event" } (layout::json_block(&o.row.trigger)) }
                }
            }
            (pipeline(&cx, &def.steps, ""))
            div.terminal.end {
                span.icon aria-hidden="true" { "■" } " " strong { "End" }
                @if let Some(o) = &view.overlay {
                    " " (layout::status_badge(&o.row.status))
                    @if let Some(out) = &o.row.output { details { summary { "Output" } (layout::json_block(out)) } }
                }
            }
        }
    }
}

fn option_text(r: &flowgate_store::ExecutionRow) -> String {
    format!("{} · {} · {}", flowgate_engine::clock::rfc3339(r.created_at).replace('T', " "), r.status, r.id)
}

fn trigger_summary(view: &FlowView, f: &CompiledFlow) -> String {
    match &f.trigger {
        FlowTrigger::Webhook(w) => {
            let methods: Vec<&str> = w.methods.iter().map(|m| m.as_str()).collect();
            format!("{} /hooks/{}/{}", methods.join("|"), f.tenant, w.path)
        }
        FlowTrigger::Schedule(_) | FlowTrigger::Poll(_) => {
            f.trigger.schedule().map(|s| format!("{} ({})", s.describe(), s.timezone())).unwrap_or_default()
        }
        FlowTrigger::Email(_) => f.email_address(&view.mail_domain).unwrap_or_default(),
        FlowTrigger::Broker(b) => format!("via {}", b.connection),
        FlowTrigger::Manual => "started by hand or by the API".to_owned(),
        FlowTrigger::Deploy => "on deploy".to_owned(),
        FlowTrigger::Undeploy => "on undeploy".to_owned(),
    }
}

fn pipeline(cx: &Cx, steps: &[StepDef], prefix: &str) -> Markup {
    html! {
        @if steps.is_empty() { p.empty.no-steps { "No steps." } } @else {
            ol.pipeline {
                @for s in steps { (node(cx, s, prefix)) }
            }
        }
    }
}

/// The retry policy in words.
pub(super) fn retry_words(p: Option<&RetryPolicy>) -> String {
    let d = RetryPolicy::default_policy();
    let p = p.unwrap_or(&d);
    if p.attempts <= 1 {
        return "1 try (no retry)".to_owned();
    }
    if p.backoff.multiplier == 1.0 {
        format!("{} tries, {} apart", p.attempts, p.backoff.initial)
    } else {
        format!("{} tries, {} then ×{} up to {}", p.attempts, p.backoff.initial, p.backoff.multiplier, p.backoff.max)
    }
}

fn node(cx: &Cx, s: &StepDef, prefix: &str) -> Markup {
    let kind = flowgate_model::StepKind::kind(&s.kind);
    let key = format!("{prefix}{}", s.id());
    let (retry, retry_from) = match (&s.options.retry, cx.flow_retry) {
        (Some(r), _) => (Some(r), "step"),
        (None, Some(r)) => (Some(r), "flow"),
        (None, None) => (None, "default"),
    };
    let run = cx.overlay.map(|o| Run::of(&o.journal, &key));
    let summary = summary(&s.kind);
    html! {
        li.node data-step=(key) data-kind=(kind) data-status=[run.as_ref().map(|r| r.status())] {
            div.card {
                div.card-head {
                    span.kind { (kind) }
                    strong.step-id { (s.id()) }
                    @if let Some(n) = &s.options.name { span.step-name { (n) } }
                    @if let Some(r) = &run { span.run { (r.badge()) } }
                }
                @if let Some(d) = &s.options.description { p.sub.step-desc { (d) } }
                @if !summary.is_empty() {
                    p.summary title=(summary) { code { (clip(&summary)) } }
                }
                @if let StepConfig::Call(c) = &s.kind {
                    @let target = c.integration.as_deref().unwrap_or(cx.integration);
                    p.call-target { "Calls " a href=(flow_url(target, &c.flow)) { code { (target) " / " (c.flow) } } }
                }
                @if let Some(w) = &s.options.when { p.when { "Runs only when " code { (clip(w)) } } }
                ul.policy aria-label="Retry and error policy" {
                    li { "Retry: " (retry_words(retry)) " (" (retry_from) ")" }
                    li { "On error: " code { (match s.options.on_error { OnError::Fail => "fail", OnError::Continue => "continue" }) } }
                    @if let Some(t) = s.options.timeout { li { "Timeout: " (t) } }
                }
                @if let Some(r) = &run { (r.data()) }
            }
            (children(cx, s, &key, prefix))
        }
    }
}

fn children(cx: &Cx, s: &StepDef, key: &str, prefix: &str) -> Markup {
    match &s.kind {
        StepConfig::Switch(sw) => html! {
            div.branches.switch role="group" aria-label=(format!("Cases of {}", s.id())) {
                @for case in &sw.cases {
                    div.branch {
                        div.branch-label { "when " code title=(case.when) { (clip(&case.when)) } }
                        (pipeline(cx, &case.steps, prefix))
                    }
                }
                @if let Some(d) = &sw.default {
                    div.branch.default {
                        div.branch-label { "otherwise" }
                        (pipeline(cx, d, prefix))
                    }
                }
            }
        },
        StepConfig::Foreach(fe) => html! {
            div.body.loop role="group" aria-label=(format!("Steps of {} for each item", s.id())) {
                div.branch-label {
                    "for each item of " code title=(fe.items) { (clip(&fe.items)) }
                    span.sub { " · " (fe.concurrency) " at once" }
                    @if let Some(c) = &fe.collect { span.sub { " · collects " code { (clip(c)) } } }
                }
                (pipeline(cx, &fe.steps, &format!("{key}[*].")))
            }
        },
        StepConfig::Parallel(p) => html! {
            div.branches.parallel role="group" aria-label=(format!("Branches of {}", s.id())) {
                @for (name, steps) in &p.branches {
                    @let branch_key = format!("{key}[{name}]");
                    div.branch data-branch=(name) {
                        div.branch-label {
                            "branch " strong { (name) }
                            @if let Some(o) = cx.overlay {
                                @let r = Run::of(&o.journal, &branch_key);
                                " " (r.badge())
                            }
                        }
                        (pipeline(cx, steps, &format!("{branch_key}.")))
                    }
                }
            }
        },
        _ => html! {},
    }
}

/// Shortened to [`SUMMARY_MAX`] characters.
fn clip(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= SUMMARY_MAX {
        one_line
    } else {
        let mut out: String = one_line.chars().take(SUMMARY_MAX - 1).collect();
        out.push('…');
        out
    }
}

/// A config value as written: text as is, anything else as compact JSON.
fn val(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An enum's name as written in YAML (`UpsertAlternate` → `upsertAlternate`).
fn op_name(debug: String) -> String {
    let mut c = debug.chars();
    c.next().map(|f| f.to_ascii_lowercase().to_string() + c.as_str()).unwrap_or_default()
}

fn via(connection: &Option<String>) -> String {
    connection.as_ref().map(|c| format!(" via {c}")).unwrap_or_default()
}

/// One line saying what the step does.
fn summary(kind: &StepConfig) -> String {
    match kind {
        StepConfig::Http(c) => format!("{} {}{}", c.method.to_ascii_uppercase(), c.url, via(&c.connection)),
        StepConfig::Transform(c) => c.expr.clone(),
        StepConfig::Filter(c) => format!("continue only when {}", c.expr),
        StepConfig::Switch(c) => format!(
            "{} case{}{}",
            c.cases.len(),
            if c.cases.len() == 1 { "" } else { "s" },
            if c.default.is_some() { " and otherwise" } else { "" }
        ),
        StepConfig::Log(c) => format!("{}: {}", op_name(format!("{:?}", c.level)), val(&c.message)),
        StepConfig::Respond(c) => format!(
            "answer {}{}",
            val(&c.status),
            c.body.as_ref().map(|b| format!(" with {}", val(b))).unwrap_or_default()
        ),
        StepConfig::Call(c) => {
            format!("call {}{}", c.integration.as_ref().map(|i| format!("{i} / ")).unwrap_or_default(), c.flow)
        }
        StepConfig::Webhook(w) => format!("POST {} (durable, retried)", w.0.endpoint),
        StepConfig::Email(c) => format!("mail to {}: {}", val(&c.to), c.subject),
        StepConfig::Dynamics(c) => format!("{} {}{}", op_name(format!("{:?}", c.op)), c.entity, via(&c.connection)),
        StepConfig::Delay(c) => match (&c.duration, &c.until) {
            (Some(d), _) => format!("wait {d}"),
            (None, Some(u)) => format!("wait until {u}"),
            (None, None) => "wait".to_owned(),
        },
        StepConfig::Wait(c) => format!(
            "wait for a POST to the resume URL{}",
            c.timeout.map(|t| format!(" (at most {t})")).unwrap_or_default()
        ),
        StepConfig::Quickbooks(c) => format!(
            "{} {}{}",
            op_name(format!("{:?}", c.op)),
            c.entity.as_deref().or(c.query.as_deref()).unwrap_or(""),
            via(&c.connection)
        ),
        StepConfig::Sql(c) => match (&c.query, &c.statements) {
            (Some(q), _) => format!("{q}{}", via(&c.connection)),
            (None, Some(st)) => format!("{} statements in one transaction{}", st.len(), via(&c.connection)),
            (None, None) => via(&c.connection).trim().to_owned(),
        },
        StepConfig::Foreach(c) => format!("for each item of {}", c.items),
        StepConfig::Parallel(c) => {
            let names: Vec<&str> = c.branches.iter().map(|(n, _)| n.as_str()).collect();
            format!("{} branches side by side: {}", names.len(), names.join(", "))
        }
        StepConfig::Amqp(c) => {
            format!("publish to exchange {} key {}{}", c.exchange, c.routing_key, via(&c.connection))
        }
        StepConfig::Nats(c) => format!("publish to {}{}", c.subject, via(&c.connection)),
        StepConfig::Mqtt(c) => format!("publish to {} (QoS {}){}", c.topic, c.qos, via(&c.connection)),
    }
}

/// Whether journal key `key` is one of pattern `pattern`'s (`[*]` stands for a loop index).
fn key_matches(pattern: &str, key: &str) -> bool {
    let (p, k) = (pattern.as_bytes(), key.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < p.len() {
        if p[i..].starts_with(b"[*]") {
            if k.get(j) != Some(&b'[') {
                return false;
            }
            let digits = k[j + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || k.get(j + 1 + digits) != Some(&b']') {
                return false;
            }
            i += 3;
            j += digits + 2;
        } else {
            if k.get(j) != Some(&p[i]) {
                return false;
            }
            i += 1;
            j += 1;
        }
    }
    j == k.len()
}

/// A step's entries in one execution.
struct Run<'a> {
    entries: Vec<&'a StepRecord>,
    /// The step is in a loop: its entries are one per item (and attempt).
    many: bool,
}

impl<'a> Run<'a> {
    fn of(journal: &'a [StepRecord], key: &str) -> Run<'a> {
        let mut entries: Vec<&StepRecord> = journal.iter().filter(|r| key_matches(key, &r.step_id)).collect();
        entries.sort_by_key(|r| r.seq);
        Run { entries, many: key.contains("[*]") }
    }

    /// The newest entry.
    fn last(&self) -> Option<&'a StepRecord> {
        self.entries.last().copied()
    }

    fn status(&self) -> String {
        match self.last() {
            None => "not run".to_owned(),
            Some(_) if self.many && self.entries.iter().any(|r| r.status == "failed") => "failed".to_owned(),
            Some(r) => r.status.clone(),
        }
    }

    fn badge(&self) -> Markup {
        let status = self.status();
        let Some(last) = self.last() else { return layout::status_badge(&status) };
        let duration = if self.many {
            let start = self.entries.iter().map(|r| r.started_at).min().unwrap_or(0);
            let end = self.entries.iter().map(|r| r.finished_at).max().unwrap_or(0);
            end - start
        } else {
            last.finished_at - last.started_at
        };
        let attempts = self.entries.iter().filter(|r| r.round == last.round).count();
        html! {
            (layout::status_badge(&status))
            span.sub.took { " " (layout::duration(duration)) }
            @if self.many {
                span.sub { " · " (self.entries.len()) " runs" (counts(&self.entries)) }
            } @else if attempts > 1 {
                span.sub { " · " (attempts) " attempts" }
            }
        }
    }

    fn data(&self) -> Markup {
        let Some(last) = self.last() else { return html! {} };
        let which = if self.many { format!(" of {}", last.step_id) } else { String::new() };
        html! {
            div.step-data {
                @if let Some(i) = &last.input { details { summary { "Input" (which) } (layout::json_block(i)) } }
                @if let Some(o) = &last.output { details { summary { "Output" (which) } (layout::json_block(o)) } }
                @if let Some(e) = &last.error { details.step-error open { summary { "Error" (which) } (layout::json_block(e)) } }
            }
        }
    }
}

/// `: 3 succeeded, 1 failed`.
fn counts(entries: &[&StepRecord]) -> String {
    let mut by: Vec<(&str, usize)> = Vec::new();
    for r in entries {
        match by.iter_mut().find(|(s, _)| *s == r.status) {
            Some(e) => e.1 += 1,
            None => by.push((&r.status, 1)),
        }
    }
    let parts: Vec<String> = by.iter().map(|(s, n)| format!("{n} {s}")).collect();
    format!(": {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::key_matches;

    #[test]
    fn journal_keys_match_their_steps() {
        assert!(key_matches("fetch", "fetch"));
        assert!(!key_matches("fetch", "fetch2"));
        assert!(!key_matches("fetch", "fetc"));
        assert!(key_matches("each[*].push", "each[3].push"));
        assert!(key_matches("each[*].push", "each[12].push"));
        assert!(!key_matches("each[*].push", "each[].push"));
        assert!(!key_matches("each[*].push", "each[a].push"));
        assert!(!key_matches("each[*].push", "each[3]"));
        assert!(key_matches("both[a].each[*].x", "both[a].each[0].x"));
        assert!(!key_matches("both[a].fetch", "both[b].fetch"));
    }
}
