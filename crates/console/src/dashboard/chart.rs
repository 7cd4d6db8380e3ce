//! The executions chart: a stacked bar per minute (or 15 minutes) as inline SVG, its legend in
//! words, and the same numbers in a visually hidden table.

use super::View;
use maud::{Markup, html};

/// The statuses stacked, bottom first; each is a class of `dashboard.css` (known words only).
pub(crate) const STATUSES: [&str; 7] = ["succeeded", "failed", "filtered", "cancelled", "running", "waiting", "queued"];

const W: f64 = 760.0;
const H: f64 = 220.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// `counts[bucket][status]` over the whole range (empty buckets included).
pub(crate) fn matrix(v: &View) -> Vec<[i64; STATUSES.len()]> {
    let n = v.range.buckets() as usize;
    let mut m = vec![[0_i64; STATUSES.len()]; n];
    for c in &v.figures.counts {
        let (Ok(b), Some(s)) = (usize::try_from(c.bucket), STATUSES.iter().position(|x| *x == c.status)) else {
            continue;
        };
        if let Some(row) = m.get_mut(b) {
            row[s] += c.count;
        }
    }
    m
}

/// The smallest 1, 2 or 5 times a power of ten at or above `n` (at least 1).
fn nice_ceiling(n: i64) -> i64 {
    let mut step = 1_i64;
    loop {
        for k in [1, 2, 5] {
            if k * step >= n {
                return k * step;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// "HH:MM" (UTC) of epoch milliseconds.
fn hhmm(ms: i64) -> String {
    let minutes = ms.div_euclid(60_000).rem_euclid(1440);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn f(x: f64) -> String {
    format!("{x:.1}")
}

/// The chart, its legend and the hidden table.
pub(crate) fn rates(v: &View) -> Markup {
    let m = matrix(v);
    let totals: Vec<i64> = m.iter().map(|r| r.iter().sum()).collect();
    let mut by_status = [0_i64; STATUSES.len()];
    for row in &m {
        for (i, n) in row.iter().enumerate() {
            by_status[i] += n;
        }
    }
    let all: i64 = by_status.iter().sum();
    let top = nice_ceiling(totals.iter().copied().max().unwrap_or(0).max(1));
    let n = m.len().max(1);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let bw = pw / n as f64;
    let gap = if bw > 6.0 { 1.5 } else { 0.5 };
    let y = |count: i64| ph * count as f64 / top as f64;
    let start = |i: usize| v.from + i as i64 * v.bucket_ms;
    // Axis labels: every 10 minutes of the hour, every 3 hours of the day.
    let label_every = match v.range {
        super::Range::Hour => 10 * 60_000,
        super::Range::Day => 3 * 3_600_000,
    };
    let summary = format!(
        "{all} executions in {}: {}.",
        v.range.words(),
        STATUSES
            .iter()
            .zip(by_status)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    html! {
        figure.dash-chart {
            svg #dash-rates-chart viewBox=(format!("0 0 {W} {H}")) role="img" aria-labelledby="dash-rates-title dash-rates-desc"
                xmlns="http://www.w3.org/2000/svg" {
                title #dash-rates-title { "Executions " (v.range.per()) " by status, " (v.range.words()) }
                desc #dash-rates-desc { (summary) " The table below the chart lists the numbers." }
                defs {
                    pattern #dash-hatch width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)" {
                        rect.hatch-bg width="6" height="6" {}
                        line.hatch-line x1="0" y1="0" x2="0" y2="6" {}
                    }
                }
                g.axis {
                    @for k in 0..=2_i64 {
                        @let value = top * k / 2;
                        @let yy = TOP + ph - y(value);
                        line.grid x1=(f(LEFT)) x2=(f(W - RIGHT)) y1=(f(yy)) y2=(f(yy)) {}
                        text.ylabel x=(f(LEFT - 6.0)) y=(f(yy + 4.0)) text-anchor="end" { (value) }
                    }
                    @for i in 0..m.len() {
                        @if start(i).rem_euclid(label_every) == 0 {
                            @let x = LEFT + bw * i as f64;
                            line.tick x1=(f(x)) x2=(f(x)) y1=(f(TOP + ph)) y2=(f(TOP + ph + 4.0)) {}
                            text.xlabel x=(f(x)) y=(f(H - 6.0)) text-anchor="middle" { (hhmm(start(i))) }
                        }
                    }
                }
                g.bars {
                    @for (i, row) in m.iter().enumerate() {
                        @let x = LEFT + bw * i as f64;
                        g.bar data-bucket=(i) {
                            title { (tooltip(v, start(i), row)) }
                            // The whole column answers the pointer, so empty minutes have their tooltip too.
                            rect.hit x=(f(x)) y=(f(TOP)) width=(f(bw)) height=(f(ph)) {}
                            @for (s, below, count) in stack(row) {
                                rect class=(format!("seg s-{s}")) x=(f(x + gap / 2.0)) y=(f(TOP + ph - y(below + count)))
                                    width=(f((bw - gap).max(0.5))) height=(f(y(count).max(0.8))) {}
                            }
                        }
                    }
                }
            }
            figcaption {
                ul.dash-legend aria-label="Legend" {
                    @for (s, count) in STATUSES.iter().zip(by_status) {
                        li {
                            svg.swatch width="14" height="14" viewBox="0 0 14 14" aria-hidden="true" {
                                rect class=(format!("seg s-{s}")) width="14" height="14" {}
                            }
                            " " (s) " " span.count { (count) }
                        }
                    }
                }
            }
        }
        // Hidden by a wrapper: a table's own box does not clip.
        div.sr-only {
            table #dash-rates {
                caption { "Executions " (v.range.per()) " by status, " (v.range.words()) " (UTC; minutes without executions left out)" }
                thead { tr {
                    th scope="col" { "Time (UTC)" }
                    @for s in STATUSES { th scope="col" { (s) } }
                    th scope="col" { "total" }
                } }
                tbody {
                    @for (i, row) in m.iter().enumerate() {
                        @if totals[i] > 0 {
                            tr {
                                th scope="row" { (hhmm(start(i))) }
                                @for c in row { td { (c) } }
                                td { (totals[i]) }
                            }
                        }
                    }
                }
                tfoot { tr {
                    th scope="row" { "All" }
                    @for c in by_status { td { (c) } }
                    td { (all) }
                } }
            }
        }
    }
}

/// A bar's segments, bottom first: each non-zero status with the count below it and its own.
fn stack(row: &[i64; STATUSES.len()]) -> Vec<(&'static str, i64, i64)> {
    let mut below = 0;
    let mut out = Vec::new();
    for (s, &count) in STATUSES.iter().zip(row) {
        if count > 0 {
            out.push((*s, below, count));
            below += count;
        }
    }
    out
}

/// A bar's tooltip: its time and numbers in words.
fn tooltip(v: &View, start: i64, row: &[i64; STATUSES.len()]) -> String {
    let total: i64 = row.iter().sum();
    let span = format!("{}–{} UTC", hhmm(start), hhmm(start + v.bucket_ms));
    if total == 0 {
        return format!("{span}: no executions");
    }
    let parts: Vec<String> =
        STATUSES.iter().zip(row).filter(|(_, n)| **n > 0).map(|(s, n)| format!("{n} {s}")).collect();
    format!("{span}: {total} ({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!([1, 2, 3, 6, 10, 11, 49, 51].map(nice_ceiling), [1, 2, 5, 10, 10, 20, 50, 100]);
    }

    #[test]
    fn times_of_day() {
        assert_eq!(hhmm(0), "00:00");
        assert_eq!(hhmm(86_400_000 + 13 * 3_600_000 + 7 * 60_000 + 59_999), "13:07");
    }
}
