//! The dashboard's smaller panels: the figures at the top, durations per flow, failures by
//! error code, the queue, and pending deliveries. Bars beside numbers are decoration
//! (`aria-hidden`): every value is written in the table beside them.

use super::{View, age};
use crate::integrations::url_part;
use crate::layout;
use maud::{Markup, html};

/// A small horizontal bar (`value` of `max`) in a fixed-size SVG.
fn bar(class: &str, value: i64, max: i64) -> Markup {
    let width = if max > 0 { 120.0 * value.max(0) as f64 / max as f64 } else { 0.0 };
    html! {
        svg.minibar width="120" height="10" viewBox="0 0 120 10" aria-hidden="true" {
            rect.track width="120" height="10" {}
            rect class=(class) width=(format!("{:.1}", width.max(if value > 0 { 1.0 } else { 0.0 }))) height="10" {}
        }
    }
}

/// The figures at the top: executions and failures in the range, the queue, deliveries.
pub(crate) fn tiles(v: &View) -> Markup {
    let d = &v.figures;
    let executions: i64 = d.counts.iter().map(|c| c.count).sum();
    let pending: i64 = d.deliveries.iter().map(|p| p.count).sum();
    html! {
        dl.dash-tiles #dash-tiles {
            div { dt { "Executions" } dd #tile-executions { (executions) } }
            div { dt { "Failures" } dd #tile-failures { (d.failures_total) } }
            div { dt { "Queued now" } dd #tile-queued { (d.queue.queued) } }
            div {
                dt { "Oldest queued" }
                dd #tile-oldest {
                    @match &d.queue.oldest {
                        Some(o) => (age(v.now - o.created_at)),
                        None => "none",
                    }
                }
            }
            div { dt { "Running now" } dd #tile-running { (d.queue.running) } }
            div { dt { "Deliveries pending" } dd #tile-pending { (pending) } }
        }
    }
}

/// p50 / p99 duration per flow.
pub(crate) fn durations(v: &View) -> Markup {
    let d = &v.figures;
    let max = d.durations.iter().map(|x| x.p99).max().unwrap_or(0);
    html! {
        section.dash-panel aria-labelledby="dash-durations-h" {
            h2 #dash-durations-h { "Duration per flow" }
            @if d.durations.is_empty() {
                p.empty { "No execution finished in " (v.range.words()) "." }
            } @else {
                div.scroll {
                    table.list #dash-durations {
                        caption.sr-only { "p50 and p99 duration per flow, " (v.range.words()) }
                        thead { tr {
                            th scope="col" { "Flow" } th scope="col" { "Runs" }
                            th scope="col" { "p50" } th scope="col" { "p99" } th scope="col" { span.sr-only { "Bars" } }
                        } }
                        tbody {
                            @for x in &d.durations {
                                tr data-integration=(x.integration) data-flow=(x.flow) data-p50=(x.p50) data-p99=(x.p99) {
                                    th scope="row" {
                                        a href=(format!("/console/executions?integration={}&flow={}", url_part(&x.integration), url_part(&x.flow))) {
                                            (x.integration) " / " (x.flow)
                                        }
                                    }
                                    td.num { (x.count) }
                                    td.num { (layout::duration(x.p50)) }
                                    td.num { (layout::duration(x.p99)) }
                                    td.bars { (bar("p50", x.p50, max)) (bar("p99", x.p99, max)) }
                                }
                            }
                        }
                    }
                }
                p.sub {
                    "From the time each execution started to when it finished; nearest-rank percentiles"
                    @if d.durations_sampled { " of the newest " (d.durations_sample) " finished executions" }
                    "."
                }
            }
        }
    }
}

/// Failures by error code.
pub(crate) fn failures(v: &View) -> Markup {
    let d = &v.figures;
    let max = d.failures.first().map_or(0, |f| f.count);
    html! {
        section.dash-panel aria-labelledby="dash-failures-h" {
            h2 #dash-failures-h { "Failures by error code" }
            @if d.failures.is_empty() {
                p.empty { "No failures in " (v.range.words()) "." }
            } @else {
                div.scroll {
                    table.list #dash-failures {
                        caption.sr-only { "Failures by error code, " (v.range.words()) }
                        thead { tr { th scope="col" { "Error code" } th scope="col" { "Failures" } th scope="col" { span.sr-only { "Bar" } } } }
                        tbody {
                            @for x in &d.failures {
                                tr data-code=(x.code) {
                                    th scope="row" { code { (x.code) } }
                                    td.num { (x.count) }
                                    td.bars { (bar("fail", x.count, max)) }
                                }
                            }
                        }
                    }
                }
                p.sub {
                    "Executions that failed in " (v.range.words()) " and are still failed. "
                    @if d.failures_sampled { "Codes of the newest " (d.failures.iter().map(|f| f.count).sum::<i64>()) " of " (d.failures_total) ". " }
                    a href="/console/executions?status=failed" { "See the failed executions" }
                }
            }
        }
    }
}

/// The queue: its depth, the oldest queued execution, what runs.
pub(crate) fn queue(v: &View) -> Markup {
    let q = &v.figures.queue;
    html! {
        section.dash-panel aria-labelledby="dash-queue-h" {
            h2 #dash-queue-h { "Queue" }
            dl.summary #dash-queue {
                dt { "Queued" } dd #queue-depth { (q.queued) }
                dt { "Running" } dd #queue-running { (q.running) }
                dt { "Oldest queued" }
                dd #queue-oldest {
                    @match &q.oldest {
                        Some(o) => {
                            "waiting " (age(v.now - o.created_at)) ": "
                            a.id href=(format!("/console/executions/{}", o.id)) { (o.id) }
                            @if o.run_after > v.now { span.sub { " (due in " (age(o.run_after - v.now)) ")" } }
                        }
                        None => span.sub { "none: the queue is empty" },
                    }
                }
            }
            @if q.queued > 0 { p.sub { a href="/console/executions?status=queued" { "See the queued executions" } } }
        }
    }
}

/// Outbound deliveries not yet delivered.
pub(crate) fn deliveries(v: &View) -> Markup {
    let d = &v.figures.deliveries;
    html! {
        section.dash-panel aria-labelledby="dash-deliveries-h" {
            h2 #dash-deliveries-h { "Deliveries pending" }
            @if d.is_empty() {
                p.empty { "No delivery is waiting to be sent." }
            } @else {
                div.scroll {
                    table.list #dash-deliveries {
                        caption.sr-only { "Outbound deliveries not yet delivered, by kind" }
                        thead { tr {
                            th scope="col" { "Kind" } th scope="col" { "Pending" }
                            th scope="col" { "Oldest" } th scope="col" { "Next attempt" }
                        } }
                        tbody {
                            @for x in d {
                                tr data-kind=(x.kind) {
                                    th scope="row" { (x.kind) }
                                    td.num { (x.count) }
                                    td { (age(v.now - x.oldest_created_at)) " ago" }
                                    td { @if x.next_at <= v.now { "due now" } @else { "in " (age(x.next_at - v.now)) } }
                                }
                            }
                        }
                    }
                }
                p.sub { "Webhooks and e-mails the flows sent that are still being tried on their schedule." }
            }
        }
    }
}
