//! The monitor's filters and one row of its table: the page renders its rows with it and the
//! live stream sends the same markup, so an updated row looks like a loaded one.
//!
//! The filters are `GET /v1/executions`'s, with the same names (`integration`, `flow`,
//! `status`, `triggerKind`, `from`, `to`, `search`, `cursor`), plus `range`: a quick time range
//! (`15m`, `1h`, `24h`, `7d`) that stands for `from` = now minus it.

use crate::layout;
use flowgate_store::{ExecutionFilter, ExecutionQuery, ExecutionRow, Status};
use maud::{Markup, html};
use serde::Deserialize;

/// The trigger kinds an execution may have, as stored (and shown by the API and CLI).
pub(crate) const TRIGGER_KINDS: &[&str] = &[
    "webhook", "manual", "schedule", "poll", "email", "amqp", "nats", "mqtt", "call", "replay", "test", "deploy",
    "undeploy",
];

/// The quick time ranges: (value, words, milliseconds).
pub(crate) const RANGES: &[(&str, &str, i64)] = &[
    ("15m", "Last 15 minutes", 15 * 60_000),
    ("1h", "Last hour", 3_600_000),
    ("24h", "Last 24 hours", 86_400_000),
    ("7d", "Last 7 days", 7 * 86_400_000),
];

/// The monitor's filters, as the API takes them.
#[derive(Deserialize, Default, Clone)]
pub(crate) struct Filters {
    #[serde(default)]
    pub(crate) integration: Option<String>,
    #[serde(default)]
    pub(crate) flow: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default, rename = "triggerKind")]
    pub(crate) trigger_kind: Option<String>,
    #[serde(default)]
    pub(crate) range: Option<String>,
    #[serde(default)]
    pub(crate) from: Option<String>,
    #[serde(default)]
    pub(crate) to: Option<String>,
    #[serde(default)]
    pub(crate) search: Option<String>,
    #[serde(default)]
    pub(crate) cursor: Option<String>,
}

pub(crate) fn given(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The filters, checked and resolved (times as epoch milliseconds).
pub(crate) struct Resolved {
    pub(crate) integration: Option<String>,
    pub(crate) flow: Option<String>,
    pub(crate) status: Option<Status>,
    pub(crate) trigger_kind: Option<String>,
    pub(crate) from: Option<i64>,
    pub(crate) to: Option<i64>,
    pub(crate) search: Option<String>,
}

impl Filters {
    /// The filters checked; `Err` says which one is not valid. `now` resolves `range`.
    pub(crate) fn resolve(&self, now: i64) -> Result<Resolved, String> {
        let status = match given(&self.status) {
            None => None,
            Some(s) => Some(Status::parse(&s).ok_or_else(|| format!("unknown status `{s}`"))?),
        };
        let trigger_kind = match given(&self.trigger_kind) {
            None => None,
            Some(k) if TRIGGER_KINDS.contains(&k.as_str()) => Some(k),
            Some(k) => return Err(format!("unknown trigger kind `{k}`: expected one of {}", TRIGGER_KINDS.join(", "))),
        };
        let range = match given(&self.range) {
            None => None,
            Some(r) => Some(
                RANGES
                    .iter()
                    .find(|(v, _, _)| *v == r)
                    .map(|(_, _, ms)| now - ms)
                    .ok_or_else(|| format!("unknown time range `{r}`: expected 15m, 1h, 24h or 7d"))?,
            ),
        };
        let from = match given(&self.from) {
            None => range,
            Some(t) => Some(parse_time(&t).ok_or_else(|| format!("`from` is not a time: {t}"))?),
        };
        let to = match given(&self.to) {
            None => None,
            Some(t) => Some(parse_time(&t).ok_or_else(|| format!("`to` is not a time: {t}"))?),
        };
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err("the time range is empty: `from` must be before `to`".into());
        }
        if given(&self.search).is_some_and(|s| s.len() > 512) {
            return Err("the search is too long (at most 512 characters)".into());
        }
        Ok(Resolved {
            integration: given(&self.integration),
            flow: given(&self.flow),
            status,
            trigger_kind,
            from,
            to,
            search: given(&self.search),
        })
    }

    /// The store query for a page of `limit` rows; `Err` names a filter that is not valid.
    pub(crate) fn query(&self, tenant: &str, limit: u32, now: i64) -> Result<ExecutionQuery, String> {
        let r = self.resolve(now)?;
        let before = match given(&self.cursor) {
            None => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| "invalid cursor".to_owned())?),
        };
        Ok(ExecutionQuery {
            tenant: tenant.to_owned(),
            integration: r.integration,
            flow: r.flow,
            status: r.status,
            trigger_kind: r.trigger_kind,
            from: r.from,
            to: r.to,
            search: r.search,
            before,
            limit,
        })
    }

    /// The bulk operations' filter for the same executions (every page, not only this one);
    /// `default_status` applies when no status is chosen (a bulk retry takes the failed
    /// ones, as the API's does).
    pub(crate) fn bulk_filter(
        &self,
        tenant: &str,
        now: i64,
        default_status: Option<Status>,
    ) -> Result<ExecutionFilter, String> {
        let r = self.resolve(now)?;
        Ok(ExecutionFilter {
            tenant: tenant.to_owned(),
            integration: r.integration,
            flow: r.flow,
            status: r.status.or(default_status).map(|s| s.as_str().to_owned()),
            from: r.from,
            to: r.to,
            trigger_kind: r.trigger_kind,
            search: r.search,
            ..Default::default()
        })
    }

    /// The filters as (name, value) pairs, without the cursor.
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("integration", &self.integration),
            ("flow", &self.flow),
            ("status", &self.status),
            ("triggerKind", &self.trigger_kind),
            ("range", &self.range),
            ("from", &self.from),
            ("to", &self.to),
            ("search", &self.search),
        ] {
            if let Some(v) = given(v) {
                pairs.push((k, v));
            }
        }
        pairs
    }

    /// Whether any filter is set.
    pub(crate) fn any(&self) -> bool {
        !self.pairs().is_empty()
    }

    /// The query string of these filters with another cursor.
    pub(crate) fn with_cursor(&self, cursor: Option<&str>) -> String {
        let mut pairs = self.pairs();
        if let Some(c) = cursor {
            pairs.push(("cursor", c.to_owned()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The filters as hidden fields of a form.
    pub(crate) fn hidden(&self) -> Markup {
        html! { @for (k, v) in self.pairs() { input type="hidden" name=(k) value=(v); } }
    }
}

/// A time as the filters take it: epoch milliseconds, RFC 3339 (`2026-01-02T10:00:00Z`,
/// `…+02:00`), or a date and time without zone as a `datetime-local` field sends it
/// (`2026-01-02T10:00`, read as UTC, the console's zone).
pub(crate) fn parse_time(t: &str) -> Option<i64> {
    let t = t.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    let (date, rest) = t.split_once(['T', ' ']).unwrap_or((t, "00:00"));
    let mut d = date.splitn(3, '-');
    let (y, m, day): (i64, i64, i64) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || !(1970..=9999).contains(&y) {
        return None;
    }
    // The zone: `Z`, `+hh:mm`, `-hh:mm`, or none (UTC).
    let (clock, offset_min) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(at) = rest.rfind(['+', '-']) {
        let (c, z) = rest.split_at(at);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (h, mm) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
        (c, sign * (h.parse::<i64>().ok()? * 60 + mm.parse::<i64>().ok()?))
    } else {
        (rest, 0)
    };
    let mut c = clock.splitn(3, ':');
    let h: i64 = c.next()?.parse().ok()?;
    let min: i64 = c.next().unwrap_or("0").parse().ok()?;
    let sec: f64 = c.next().unwrap_or("0").parse().ok()?;
    if h > 23 || min > 59 || !(0.0..61.0).contains(&sec) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60 - offset_min * 60;
    Some(secs * 1000 + (sec * 1000.0).round() as i64)
}

/// How long it ran (or has run until its last update), in milliseconds.
pub(crate) fn took(r: &ExecutionRow) -> Option<i64> {
    Some(r.finished_at? - r.started_at.unwrap_or(r.created_at))
}

/// One row of the monitor.
pub(crate) fn render(r: &ExecutionRow) -> Markup {
    html! {
        tr id=(format!("ex-{}", r.id)) data-seq=(r.seq) {
            td data-label="Time" { (layout::time(r.created_at)) }
            td data-label="Integration" { (r.integration) }
            td data-label="Flow" { (r.flow) }
            td data-label="Status" { (layout::status_badge(&r.status)) }
            td data-label="Trigger" { (r.trigger_kind) }
            td data-label="Duration" { @if let Some(ms) = took(r) { (layout::duration(ms)) } }
            td data-label="Execution" { a.id href=(format!("/console/executions/{}", r.id)) { (r.id) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_the_api_and_the_datetime_field_give_them() {
        assert_eq!(parse_time("0"), Some(0));
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20.5Z"), Some(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T23:13:20+01:00"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13"), Some(1_700_000_000_000 - 20_000));
        assert_eq!(parse_time("2024-03-01"), Some(1_709_251_200_000));
        for bad in ["", "yesterday", "2023-13-01T00:00", "2023-11-14T25:00", "2023-11-14T22:13:20+xx"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn filters_resolve_and_refuse_nonsense() {
        let f = Filters { range: Some("1h".into()), ..Default::default() };
        assert_eq!(f.resolve(10_000_000).unwrap().from, Some(10_000_000 - 3_600_000));
        let f = Filters { range: Some("1h".into()), from: Some("5".into()), ..Default::default() };
        assert_eq!(f.resolve(10_000_000).unwrap().from, Some(5), "an explicit from wins");
        for bad in [
            Filters { status: Some("bogus".into()), ..Default::default() },
            Filters { trigger_kind: Some("<script>".into()), ..Default::default() },
            Filters { range: Some("1y".into()), ..Default::default() },
            Filters { from: Some("10".into()), to: Some("5".into()), ..Default::default() },
            Filters { to: Some("soon".into()), ..Default::default() },
        ] {
            assert!(bad.resolve(0).is_err());
        }
        let f = Filters { status: Some(" ".into()), flow: Some("a b".into()), ..Default::default() };
        assert_eq!(f.with_cursor(Some("7")), "flow=a+b&cursor=7");
    }
}
