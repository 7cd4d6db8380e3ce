//! The console's dashboard (issue 19, "at a glance"): what one tenant's executions and
//! deliveries look like over a time range, read by [`Store::dashboard`](crate::Store::dashboard)
//! with a few index-served queries (`shared/dashboard.rs`, migration `0013_dashboard.sql`).
//!
//! This module holds the records and the arithmetic done in Rust (percentiles, error codes);
//! the SQL is written once for both backends in `shared/dashboard.rs`.

use serde::Serialize;
use std::collections::BTreeMap;

/// How many of the newest finished executions of the range the durations are computed from.
/// Percentiles need every value of the sample; SQLite has no percentile function, so they are
/// computed here from the newest `DURATION_SAMPLE` (a bounded read of an index, at most a few
/// hundred kilobytes), not from the whole range when it holds more.
pub const DURATION_SAMPLE: u32 = 20_000;
/// How many of the newest failures of the range are read for their error codes (the codes sit
/// in the error's JSON text, which has no index); the total is counted exactly.
pub const FAILURE_SAMPLE: u32 = 5_000;

/// What the dashboard asks for: one tenant, the half-open range `[from, to)` cut into buckets of
/// `bucket_ms` (epoch milliseconds), and the time now (for ages).
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    /// The tenant.
    pub tenant: String,
    /// The range's start (inclusive).
    pub from: i64,
    /// The range's end (exclusive).
    pub to: i64,
    /// The width of one bar of the chart.
    pub bucket_ms: i64,
}

/// One tenant's figures over a range.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    /// Executions created in the range, by bucket and (current) status, in bucket order; only
    /// non-zero counts are listed.
    pub counts: Vec<BucketCount>,
    /// Durations (`finished_at - started_at`) of the executions that finished in the range,
    /// per flow, slowest p99 first.
    pub durations: Vec<FlowDurations>,
    /// How many finished executions the durations were computed from.
    pub durations_sample: u64,
    /// True when the range held more finished executions than [`DURATION_SAMPLE`]: the
    /// durations are those of the newest.
    pub durations_sampled: bool,
    /// The queue now.
    pub queue: QueueSummary,
    /// Failures that finished in the range, by error code, most frequent first.
    pub failures: Vec<FailureCount>,
    /// All failures that finished in the range (exact).
    pub failures_total: i64,
    /// True when the codes come from the newest [`FAILURE_SAMPLE`] failures only.
    pub failures_sampled: bool,
    /// Outbound deliveries not yet delivered (pending), by kind.
    pub deliveries: Vec<PendingDeliveries>,
}

/// Executions of one status created in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketCount {
    /// The bucket's index from the range's start.
    pub bucket: i64,
    /// The status.
    pub status: String,
    /// How many.
    pub count: i64,
}

/// One flow's duration percentiles, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowDurations {
    /// The integration.
    pub integration: String,
    /// The flow.
    pub flow: String,
    /// How many finished executions of the sample.
    pub count: u64,
    /// The median.
    pub p50: i64,
    /// The 99th percentile.
    pub p99: i64,
    /// The slowest.
    pub max: i64,
}

/// The tenant's queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueSummary {
    /// Queued executions (due or not).
    pub queued: i64,
    /// Running executions.
    pub running: i64,
    /// The queued execution accepted first.
    pub oldest: Option<OldestQueued>,
}

/// The queued execution accepted first (its age is how long the queue has held work).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OldestQueued {
    /// Its id.
    pub id: String,
    /// When it was accepted.
    pub created_at: i64,
    /// When it is (or was) due to run.
    pub run_after: i64,
}

/// Failures with one error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureCount {
    /// The code (`unknown` when the error has none).
    pub code: String,
    /// How many.
    pub count: i64,
}

/// Pending deliveries of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingDeliveries {
    /// `webhook`, `email`, …
    pub kind: String,
    /// How many.
    pub count: i64,
    /// When the oldest was created.
    pub oldest_created_at: i64,
    /// When the next attempt is due.
    pub next_at: i64,
}

/// The value at quantile `q` (0 < q ≤ 1) of `sorted` (ascending, not empty) by the
/// nearest-rank method: the smallest value with at least `q` of the values at or below it.
pub fn nearest_rank(sorted: &[i64], q: f64) -> i64 {
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

/// Per-flow percentiles of `(integration, flow, duration_ms)` rows, slowest p99 first.
pub fn flow_durations(rows: Vec<(String, String, i64)>) -> Vec<FlowDurations> {
    let mut by_flow: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for (integration, flow, ms) in rows {
        by_flow.entry((integration, flow)).or_default().push(ms.max(0));
    }
    let mut out: Vec<FlowDurations> = by_flow
        .into_iter()
        .map(|((integration, flow), mut v)| {
            v.sort_unstable();
            FlowDurations {
                integration,
                flow,
                count: v.len() as u64,
                p50: nearest_rank(&v, 0.5),
                p99: nearest_rank(&v, 0.99),
                max: *v.last().unwrap_or(&0),
            }
        })
        .collect();
    out.sort_by(|a, b| b.p99.cmp(&a.p99).then_with(|| (&a.integration, &a.flow).cmp(&(&b.integration, &b.flow))));
    out
}

/// The code of a stored error (`{"code": …, "message": …}`); `unknown` when there is none.
pub fn error_code(error: Option<&str>) -> String {
    error
        .and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Counts of error codes, most frequent first (then by code).
pub fn failure_counts<'a>(errors: impl IntoIterator<Item = Option<&'a str>>) -> Vec<FailureCount> {
    let mut by_code: BTreeMap<String, i64> = BTreeMap::new();
    for e in errors {
        *by_code.entry(error_code(e)).or_default() += 1;
    }
    let mut out: Vec<FailureCount> = by_code.into_iter().map(|(code, count)| FailureCount { code, count }).collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(nearest_rank(&v, 0.5), 50);
        assert_eq!(nearest_rank(&v, 0.99), 99);
        assert_eq!(nearest_rank(&[7], 0.5), 7);
        assert_eq!(nearest_rank(&[7], 0.99), 7);
        assert_eq!(nearest_rank(&[1, 2], 0.5), 1);
        assert_eq!(nearest_rank(&[1, 2], 0.99), 2);
        assert_eq!(nearest_rank(&[1, 2, 3], 0.5), 2);
    }

    #[test]
    fn durations_per_flow_slowest_first() {
        let rows = vec![
            ("i".into(), "fast".into(), 3),
            ("i".into(), "slow".into(), 300),
            ("i".into(), "fast".into(), 1),
            ("i".into(), "slow".into(), 100),
            ("i".into(), "fast".into(), 2),
        ];
        let d = flow_durations(rows);
        assert_eq!(d[0].flow, "slow");
        assert_eq!((d[0].count, d[0].p50, d[0].p99, d[0].max), (2, 100, 300, 300));
        assert_eq!((d[1].count, d[1].p50, d[1].p99, d[1].max), (3, 2, 3, 3));
    }

    #[test]
    fn error_codes_are_read_from_the_json() {
        assert_eq!(error_code(Some(r#"{"message":"x","code":"http_status"}"#)), "http_status");
        assert_eq!(error_code(Some("not json")), "unknown");
        assert_eq!(error_code(None), "unknown");
        let c = failure_counts([Some(r#"{"code":"a"}"#), Some(r#"{"code":"b"}"#), Some(r#"{"code":"b"}"#), None]);
        assert_eq!(
            c,
            vec![
                FailureCount { code: "b".into(), count: 2 },
                FailureCount { code: "a".into(), count: 1 },
                FailureCount { code: "unknown".into(), count: 1 }
            ]
        );
    }
}
