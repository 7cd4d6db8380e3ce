//! The dashboard, `/console/dashboard?range=hour|day`: at a glance, for the signed-in tenant
//! only — executions per minute (last hour) or per 15 minutes (last day) by status as a stacked
//! bar chart, p50 / p99 duration per flow, the queue (depth, the oldest queued execution),
//! failures by error code, and outbound deliveries still pending. `/console/dashboard/data` gives
//! the same figures as JSON; the page's script reloads its figures every 10 seconds.
//!
//! Every figure comes from one store call, [`Store::dashboard`](flowgate_store::Store::dashboard),
//! whose statements each read one tenant's entries of an index over a time range or a status
//! (see `crates/store/src/shared/dashboard.rs` for which index serves which): no table scans.
//! Percentiles are computed in Rust (nearest rank) from the newest 20,000 finished executions
//! of the range, since SQLite has no percentile function; the page says so when it sampled.
//!
//! The chart is server-rendered inline SVG (no chart library, no inline style: colours come
//! from `dashboard.css` through classes); each bar has a `<title>` with its numbers, the legend
//! names each status in words (failed bars are also hatched), and a visually hidden table holds
//! the same numbers for screen readers.

mod chart;
mod panels;

use crate::Console;
use crate::layout::{self, Nav};
use crate::session::Session;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use flowgate_store::dashboard::{Dashboard, DashboardQuery};
use http::StatusCode;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

/// This area's routes (merged into the console's router).
pub(crate) fn routes() -> Router<Console> {
    Router::new().route("/dashboard", get(page)).route("/dashboard/data", get(data))
}

/// The time ranges the dashboard shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Range {
    /// The last hour, a bar per minute.
    Hour,
    /// The last day, a bar per 15 minutes.
    Day,
}

impl Range {
    /// The range of `?range=` (the hour when absent).
    fn parse(s: Option<&str>) -> Result<Range, String> {
        match s.unwrap_or("hour") {
            "" | "hour" => Ok(Range::Hour),
            "day" => Ok(Range::Day),
            other => Err(format!("There is no range “{other}”: use hour or day.")),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "hour",
            Range::Day => "day",
        }
    }

    /// The width of a bar, in milliseconds.
    pub(crate) fn bucket_ms(self) -> i64 {
        match self {
            Range::Hour => 60_000,
            Range::Day => 15 * 60_000,
        }
    }

    /// How many bars.
    pub(crate) fn buckets(self) -> i64 {
        match self {
            Range::Hour => 60,
            Range::Day => 96,
        }
    }

    /// "the last hour".
    pub(crate) fn words(self) -> &'static str {
        match self {
            Range::Hour => "the last hour",
            Range::Day => "the last 24 hours",
        }
    }

    /// "per minute".
    pub(crate) fn per(self) -> &'static str {
        match self {
            Range::Hour => "per minute",
            Range::Day => "per 15 minutes",
        }
    }

    /// The window ending with the bar that holds `now`: `[from, to)`, aligned to whole bars.
    fn window(self, now: i64) -> (i64, i64) {
        let b = self.bucket_ms();
        let to = (now.div_euclid(b) + 1) * b;
        (to - self.buckets() * b, to)
    }
}

#[derive(Deserialize)]
pub(crate) struct Params {
    range: Option<String>,
}

/// What a page (or the JSON) shows: the figures and where they sit in time.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct View {
    pub(crate) range: Range,
    /// Epoch milliseconds.
    pub(crate) now: i64,
    pub(crate) from: i64,
    pub(crate) to: i64,
    pub(crate) bucket_ms: i64,
    #[serde(flatten)]
    pub(crate) figures: Dashboard,
}

async fn load(c: &Console, tenant: &str, range: Range) -> Result<View, flowgate_store::Error> {
    let now = c.engine().clock().now_ms();
    let (from, to) = range.window(now);
    let query = DashboardQuery { tenant: tenant.to_owned(), from, to, bucket_ms: range.bucket_ms() };
    let figures = c.engine().store().dashboard(&query).await?;
    Ok(View { range, now, from, to, bucket_ms: range.bucket_ms(), figures })
}

fn unavailable(e: &flowgate_store::Error) -> Response {
    tracing::error!(error = %e, "Console: cannot read the dashboard's figures.");
    layout::error_page(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "The database did not answer; try again.")
}

/// `GET /console/dashboard?range=hour|day`.
pub(crate) async fn page(State(c): State<Console>, s: Session, Query(p): Query<Params>) -> Response {
    let range = match Range::parse(p.range.as_deref()) {
        Ok(r) => r,
        Err(m) => return layout::error_page(StatusCode::BAD_REQUEST, "Unknown range", &m),
    };
    let view = match load(&c, &s.tenant, range).await {
        Ok(v) => v,
        Err(e) => return unavailable(&e),
    };
    let body = html! {
        div.dash-head {
            h1 { "Dashboard" }
            nav.dash-range aria-label="Time range" {
                @for r in [Range::Hour, Range::Day] {
                    a href=(format!("/console/dashboard?range={}", r.as_str()))
                        aria-current=[(r == range).then_some("page")] {
                        @if r == Range::Hour { "Last hour" } @else { "Last day" }
                    }
                }
            }
        }
        div #dash-live data-refresh="10000" { (figures(&view)) }
    };
    Html(layout::page("Dashboard", Nav::Dashboard, Some((&s.tenant, &s.csrf)), body).into_string()).into_response()
}

/// Everything that the page's script refreshes.
fn figures(v: &View) -> Markup {
    html! {
        p.dash-updated.sub {
            "Figures of " (v.range.words()) ", as of " (layout::time(v.now)) " (UTC)."
            span #dash-refresh-state {}
        }
        (panels::tiles(v))
        section.dash-panel.dash-wide aria-labelledby="dash-rate-h" {
            h2 #dash-rate-h { "Executions " (v.range.per()) " by status" }
            (chart::rates(v))
        }
        div.dash-grid {
            (panels::durations(v))
            (panels::failures(v))
            (panels::queue(v))
            (panels::deliveries(v))
        }
    }
}

/// `GET /console/dashboard/data?range=hour|day`: the page's figures as JSON.
pub(crate) async fn data(State(c): State<Console>, s: Session, Query(p): Query<Params>) -> Response {
    let range = match Range::parse(p.range.as_deref()) {
        Ok(r) => r,
        Err(m) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": { "code": "invalid_range", "message": m } })),
            )
                .into_response();
        }
    };
    match load(&c, &s.tenant, range).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "Console: cannot read the dashboard's figures.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": { "code": "unavailable", "message": "The database did not answer; try again." } })),
            )
                .into_response()
        }
    }
}

/// How long ago (or until) something was, in words read at a glance.
pub(crate) fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_align() {
        assert_eq!(Range::parse(None), Ok(Range::Hour));
        assert_eq!(Range::parse(Some("day")), Ok(Range::Day));
        assert!(Range::parse(Some("<b>week")).is_err());
        let (from, to) = Range::Hour.window(1_000_000_123);
        assert_eq!((to - from, to % 60_000), (3_600_000, 0));
        assert!(from <= 1_000_000_123 - 3_540_000 && to > 1_000_000_123);
        let (from, to) = Range::Day.window(1_000_000_123);
        assert_eq!((to - from, to % 900_000), (86_400_000, 0));
    }

    #[test]
    fn ages_in_words() {
        assert_eq!(age(5_400), "5 s");
        assert_eq!(age(125_000), "2 min 5 s");
        assert_eq!(age(3_720_000), "1 h 2 min");
        assert_eq!(age(90_000_000), "1 d 1 h");
        assert_eq!(age(-5), "0 s");
    }
}
