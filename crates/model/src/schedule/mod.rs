//! When schedules fire: presets (`15min`, `daily`, …) and cron expressions, read in an IANA
//! time zone, daylight-saving changes included. Pure computation on epoch milliseconds (UTC
//! instants); slots are whole seconds.
//!
//! A schedule is a set of wall-clock times in its zone (presets are cron patterns too:
//! `15min` is `*/15 * * * *`, `daily` is `0 0 * * *`, …), matched by `croner` on the bare
//! calendar. This module then turns wall-clock times into instants with these rules:
//!
//! - A schedule that fires in *every* hour of the day (the sub-hour presets, `1hr`, and cron
//!   whose hour field is `*`) runs in real time. A wall-clock time skipped by spring-forward
//!   simply does not occur (real time has no gap there: `15min` goes 01:45 CET → 03:00 CEST,
//!   15 minutes apart), and at fall-back the repeated hour fires on both passes (the instants
//!   differ), so `15min` fires every 15 minutes of real time through both changes.
//! - Any other schedule (fixed times of day: `12hr`, `daily`, `0 7 * * MON-FRI`, `*/15 2 * * *`)
//!   is a wall-clock schedule. A time skipped by spring-forward fires once, at the first valid
//!   instant after the gap (daily 02:30 in Oslo on 2026-03-29 fires at 03:00 CEST = 01:00 UTC),
//!   like Vixie cron: never skipped, never twice (several skipped times collapse to that one
//!   instant). A time that occurs twice at fall-back fires once, at its first occurrence
//!   (02:30 CEST on 2026-10-25, 00:30 UTC).
//!
//! Offsets come from `chrono-tz` (its tables carry summer time up to 2099; later years use
//! standard time). The search assumes offset changes at least 6 hours apart.
//!
//! (`croner`'s own zone handling drops the second pass for interval patterns and skips
//! hour-restricted patterns such as `*/15 2 * * *` on a spring-forward day; it is therefore
//! used only for calendar matching, and the rules above are applied here.)

use std::fmt;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Why a schedule does not parse, and which field is at fault (`every`, `cron`, `timezone`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    /// The field at fault: `every`, `cron`, `timezone`, or empty for the trigger as a whole.
    pub field: &'static str,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.field, self.message) }
    }
}

impl std::error::Error for ScheduleError {}

/// The presets accepted by `every`, for error messages.
const PRESETS: &str = "1min, 5min, 15min, 1hr, 12hr, daily, weekly, monthly \
                       (also hourly, Nmin or Nm where N divides 60, Nhr or Nh where N divides 24)";

/// How far around an instant to look for an offset change whose repeated or skipped hour
/// matters (real daylight-saving shifts are an hour, rarely two).
const LOOKAROUND_SECS: i64 = 6 * 3600;

/// Most wall-clock candidates one search visits before giving up (it visits one or two).
const SEARCH_CAP: usize = 1000;

/// A preset interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Every {
    /// Every N minutes (N < 60 divides 60), aligned to the hour.
    Minutes(u32),
    /// Every N hours (N < 24 divides 24), aligned to midnight.
    Hours(u32),
    /// 00:00 every day.
    Daily,
    /// Monday 00:00.
    Weekly,
    /// The 1st at 00:00.
    Monthly,
}

impl Every {
    fn parse(text: &str) -> Option<Every> {
        let t = text.trim().to_ascii_lowercase();
        match t.as_str() {
            "hourly" => return Some(Every::Hours(1)),
            "daily" => return Some(Every::Daily),
            "weekly" => return Some(Every::Weekly),
            "monthly" => return Some(Every::Monthly),
            _ => {}
        }
        let number = |digits: &str| -> Option<u32> {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse::<u32>().ok().filter(|n| *n > 0)
        };
        if let Some(n) = t.strip_suffix("min").or_else(|| t.strip_suffix('m')).and_then(number) {
            return match n {
                60 => Some(Every::Hours(1)),
                n if 60 % n == 0 => Some(Every::Minutes(n)),
                _ => None,
            };
        }
        if let Some(n) = t.strip_suffix("hr").or_else(|| t.strip_suffix('h')).and_then(number) {
            return match n {
                24 => Some(Every::Daily),
                n if 24 % n == 0 => Some(Every::Hours(n)),
                _ => None,
            };
        }
        None
    }

    /// The equivalent cron pattern (six fields, seconds first).
    fn pattern(self) -> String {
        match self {
            Every::Minutes(1) => "0 * * * * *".to_owned(),
            Every::Minutes(n) => format!("0 */{n} * * * *"),
            Every::Hours(1) => "0 0 * * * *".to_owned(),
            Every::Hours(n) => format!("0 0 */{n} * * *"),
            Every::Daily => "0 0 0 * * *".to_owned(),
            Every::Weekly => "0 0 0 * * MON".to_owned(),
            Every::Monthly => "0 0 0 1 * *".to_owned(),
        }
    }

    fn describe(self) -> String {
        match self {
            Every::Minutes(1) => "every minute".to_owned(),
            Every::Minutes(n) => format!("every {n} minutes"),
            Every::Hours(1) => "every hour".to_owned(),
            Every::Hours(n) => format!("every {n} hours"),
            Every::Daily => "daily at 00:00".to_owned(),
            Every::Weekly => "weekly on Monday at 00:00".to_owned(),
            Every::Monthly => "monthly on the 1st at 00:00".to_owned(),
        }
    }
}

/// What the schedule was written as.
#[derive(Debug, Clone)]
enum Source {
    Every(Every),
    /// The cron expression, fields separated by single spaces.
    Cron(String),
}

/// A parsed schedule: which wall-clock times fire, in which time zone.
///
/// All instants in and out are epoch milliseconds; slots fall on whole seconds.
#[derive(Debug, Clone)]
pub struct Schedule {
    source: Source,
    /// Matches wall-clock times (croner is only ever given naive times, as UTC).
    cron: Cron,
    tz: Tz,
    /// Fires in every hour of the day: runs in real time across offset changes (module doc).
    every_hour: bool,
}

/// How a wall-clock time maps to instants (epoch seconds).
enum Wall {
    /// Occurs once.
    Once(i64),
    /// Occurs twice (fall-back): first and second pass.
    Twice(i64, i64),
    /// Skipped (spring-forward): the last valid wall-clock time before the gap, the first after
    /// it, and the instant of the change (the first valid instant after the gap).
    Gap { before: NaiveDateTime, after: NaiveDateTime, at: i64 },
}

impl Schedule {
    /// Parses exactly one of `every` (preset) and `cron`, read in `timezone` (default UTC).
    ///
    /// `every` is one of the presets `1min`, `5min`, `15min`, `1hr`, `12hr`, `daily`,
    /// `weekly`, `monthly`, or `hourly`, `Nmin`/`Nm` (N divides 60), `Nhr`/`Nh` (N divides 24),
    /// all aligned to the wall clock of the zone. `cron` has 5 fields (minute hour
    /// day-of-month month day-of-week) or 6 with seconds first; names (`MON-FRI`, `JAN`),
    /// ranges, lists and steps are accepted.
    ///
    /// # Errors
    /// The field at fault (`every`, `cron`, `timezone`, or `""` when neither or both of
    /// `every` and `cron` are set) and what was expected.
    pub fn parse(every: Option<&str>, cron: Option<&str>, timezone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let err = |field: &'static str, message: String| ScheduleError { field, message };
        let tz = match timezone {
            None => Tz::UTC,
            Some(name) => name.trim().parse::<Tz>().map_err(|_| {
                err(
                    "timezone",
                    format!("unknown time zone `{name}`: it must be an IANA time zone name like Europe/Oslo"),
                )
            })?,
        };
        let (source, pattern) = match (every, cron) {
            (None, None) => {
                return Err(err(
                    "",
                    "a schedule needs one of `every` (a preset like 15min) or `cron`; neither is set".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(err("", "a schedule takes exactly one of `every` and `cron`, not both".into()));
            }
            (Some(text), None) => {
                let every = Every::parse(text)
                    .ok_or_else(|| err("every", format!("unknown interval `{text}`: expected one of {PRESETS}")))?;
                (Source::Every(every), every.pattern())
            }
            (None, Some(text)) => {
                let fields: Vec<&str> = text.split_whitespace().collect();
                if fields.len() != 5 && fields.len() != 6 {
                    return Err(err(
                        "cron",
                        format!("invalid cron expression `{text}`: it has {} fields; {}", fields.len(), CRON_EXPECTED),
                    ));
                }
                let joined = fields.join(" ");
                (Source::Cron(joined.clone()), joined)
            }
        };
        let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
        let cron = parser.parse(&pattern).map_err(|e| {
            let what = match &source {
                Source::Cron(_) => "cron",
                Source::Every(_) => "every",
            };
            err(what, format!("invalid cron expression `{pattern}`: {e}; {CRON_EXPECTED}"))
        })?;
        if !ever_fires(&cron) {
            return Err(err(
                "cron",
                format!(
                    "cron expression `{pattern}` never fires: no date matches its day-of-month, month and day-of-week"
                ),
            ));
        }
        let every_hour = (0..24).all(|h| cron.pattern.hour_match(h).unwrap_or(false));
        Ok(Schedule { source, cron, tz, every_hour })
    }

    /// The time zone the schedule is read in (`UTC` by default), as an IANA name.
    pub fn timezone(&self) -> &str {
        self.tz.name()
    }

    /// A short human description: `every 15 minutes`, `daily at 00:00`,
    /// `cron 0 7 * * MON-FRI` (the time zone is [`Schedule::timezone`]).
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Every(every) => every.describe(),
            Source::Cron(text) => format!("cron {text}"),
        }
    }

    /// The first slot strictly after `ms` (epoch milliseconds), if any (`None` past the
    /// year 5000 or outside the representable range).
    pub fn next_after(&self, ms: i64) -> Option<i64> {
        let t = ms.div_euclid(1000);
        let offset = self.offset_at(t)?;
        // A real-time schedule also fires on the second pass of an hour repeated soon after
        // `t`, whose wall-clock times come before `t`'s.
        let mut second_pass = None;
        if self.every_hour
            && let Some((change, after)) = self.change_within(t, t.checked_add(LOOKAROUND_SECS)?)
            && after < offset
            && let Some(Wall::Twice(_, b)) =
                naive(change + after).and_then(|c| self.next_match(c)).and_then(|n| self.wall(n))
            && b > t
        {
            second_pass = Some(b);
        }
        let done = |slot: i64| to_ms(second_pass.map_or(slot, |b| b.min(slot)));
        let mut cursor = naive(t.checked_add(offset)?.checked_add(1)?)?;
        for _ in 0..SEARCH_CAP {
            let Some(wall_time) = self.next_match(cursor) else { break };
            let Some(wall) = self.wall(wall_time) else { break };
            match wall {
                Wall::Once(at) if at > t => return done(at),
                Wall::Once(_) => {}
                Wall::Twice(a, b) => {
                    if a > t {
                        return done(a);
                    }
                    if self.every_hour && b > t {
                        return done(b);
                    }
                    // A wall-clock schedule whose first pass is behind: skip the repeated hour.
                    let first_offset = wall_time.and_utc().timestamp() - a;
                    if let Some((change, _)) = self.change_within(a, b)
                        && let Some(end) = naive(change + first_offset)
                        && end > wall_time
                    {
                        cursor = end;
                        continue;
                    }
                }
                Wall::Gap { after, at, .. } => {
                    if !self.every_hour && at > t {
                        return done(at);
                    }
                    cursor = after;
                    continue;
                }
            }
            cursor = wall_time.checked_add_signed(TimeDelta::seconds(1))?;
        }
        second_pass.and_then(to_ms)
    }

    /// The latest slot at or before `ms`, if any. Searches backwards in the calendar, so it is
    /// as quick for a yearly schedule asked about centuries away as for a minutely one.
    pub fn latest_at_or_before(&self, ms: i64) -> Option<i64> {
        let t = ms.div_euclid(1000);
        let offset = self.offset_at(t)?;
        // Shortly after a fall-back, the first pass of wall-clock times later than `t`'s may
        // lie before `t`.
        let mut first_pass = None;
        if let Some((change, after)) = self.change_within(t.checked_sub(LOOKAROUND_SECS)?, t)
            && after == offset
            && let Some(before) = self.offset_at(change - 1)
            && before > offset
            && let Some(Wall::Twice(a, _)) =
                naive(t.min(change - 1) + before).and_then(|c| self.prev_match(c)).and_then(|n| self.wall(n))
            && a <= t
        {
            first_pass = Some(a);
        }
        let done = |slot: i64| to_ms(first_pass.map_or(slot, |a| a.max(slot)));
        let mut cursor = naive(t.checked_add(offset)?)?;
        for _ in 0..SEARCH_CAP {
            let Some(wall_time) = self.prev_match(cursor) else { break };
            let Some(wall) = self.wall(wall_time) else { break };
            match wall {
                Wall::Once(at) if at <= t => return done(at),
                Wall::Once(_) => {}
                Wall::Twice(a, b) => {
                    if self.every_hour && b <= t {
                        return done(b);
                    }
                    if a <= t {
                        return done(a);
                    }
                }
                Wall::Gap { before, at, .. } => {
                    if !self.every_hour && at <= t {
                        return done(at);
                    }
                    cursor = before;
                    continue;
                }
            }
            cursor = wall_time.checked_sub_signed(TimeDelta::seconds(1))?;
        }
        first_pass.and_then(to_ms)
    }

    /// The slots in `(after, upto]`, oldest first, at most `max` of them: when the range
    /// holds more, these are its **oldest** `max` slots (call again from the last one for the
    /// rest). The work is bounded by `max`, however long the range.
    pub fn slots_between(&self, after: i64, upto: i64, max: usize) -> Vec<i64> {
        let mut slots = Vec::new();
        let mut from = after;
        while slots.len() < max {
            match self.next_after(from) {
                Some(slot) if slot <= upto => {
                    slots.push(slot);
                    from = slot;
                }
                _ => break,
            }
        }
        slots
    }

    /// The next `n` slots strictly after `ms`, oldest first (fewer if the schedule ends).
    pub fn upcoming(&self, ms: i64, n: usize) -> Vec<i64> {
        self.slots_between(ms, i64::MAX, n)
    }

    /// The zone's offset from UTC (seconds) at instant `secs`.
    fn offset_at(&self, secs: i64) -> Option<i64> {
        let at = DateTime::from_timestamp(secs, 0)?.naive_utc();
        Some(i64::from(self.tz.offset_from_utc_datetime(&at).fix().local_minus_utc()))
    }

    /// The first offset change in `(from, to]` (assuming at most one) and the offset after
    /// it, if the offsets at `from` and `to` differ.
    fn change_within(&self, from: i64, to: i64) -> Option<(i64, i64)> {
        let start = self.offset_at(from)?;
        let end = self.offset_at(to)?;
        if start == end {
            return None;
        }
        let (mut low, mut high) = (from, to);
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if self.offset_at(mid)? == start {
                low = mid;
            } else {
                high = mid;
            }
        }
        Some((high, self.offset_at(high)?))
    }

    /// The first wall-clock time at or after `from` that the pattern matches.
    fn next_match(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron.find_next_occurrence(&from.and_utc(), true).ok().map(|d| d.naive_utc())
    }

    /// The last wall-clock time at or before `from` that the pattern matches.
    fn prev_match(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron.find_previous_occurrence(&from.and_utc(), true).ok().map(|d| d.naive_utc())
    }

    /// How wall-clock time `wall` occurs in the zone.
    fn wall(&self, wall: NaiveDateTime) -> Option<Wall> {
        match self.tz.from_local_datetime(&wall) {
            LocalResult::Single(d) => Some(Wall::Once(d.timestamp())),
            LocalResult::Ambiguous(a, b) => Some(Wall::Twice(a.timestamp(), b.timestamp())),
            LocalResult::None => self.gap(wall),
        }
    }

    /// The gap (spring-forward) that skipped wall-clock time `wall`.
    fn gap(&self, wall: NaiveDateTime) -> Option<Wall> {
        let valid = |n: NaiveDateTime| !matches!(self.tz.from_local_datetime(&n), LocalResult::None);
        const STEP: i64 = 15 * 60;
        // Coarse steps to a valid time (gaps are an hour or two; a zone change can skip a day).
        let mut low = wall.and_utc().timestamp();
        let mut high = low;
        let mut steps = 0;
        loop {
            high = high.checked_add(STEP)?;
            if valid(naive(high)?) {
                break;
            }
            low = high;
            steps += 1;
            if steps > 4 * 24 * 3 {
                return None;
            }
        }
        // `low` is skipped, `high` valid: bisect to the first valid second.
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if valid(naive(mid)?) {
                high = mid;
            } else {
                low = mid;
            }
        }
        let after = naive(high)?;
        let at = self.tz.from_local_datetime(&after).earliest()?.timestamp();
        let before = naive(at.checked_sub(1)?.checked_add(self.offset_at(at.checked_sub(1)?)?)?)?;
        Some(Wall::Gap { before, after, at })
    }
}

/// What a cron expression must look like, for error messages.
const CRON_EXPECTED: &str = "expected 5 fields (minute hour day-of-month month day-of-week, e.g. `0 7 * * MON-FRI`) \
                             or 6 with seconds first (e.g. `30 0 7 * * MON-FRI`)";

/// Whether some date matches the pattern's day, month and weekday fields. Years 2001–2028
/// cover every combination of leap year and weekday of 1 January.
fn ever_fires(cron: &Cron) -> bool {
    let p = &cron.pattern;
    (1..=12u32).filter(|m| p.month_match(*m).unwrap_or(false)).any(|m| {
        (2001..=2028).any(|y| {
            (1..=31u32).any(|d| NaiveDate::from_ymd_opt(y, m, d).is_some() && p.day_match(y, m, d).unwrap_or(false))
        })
    })
}

/// Epoch seconds read as a bare wall-clock time.
fn naive(secs: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp(secs, 0).map(|d| d.naive_utc())
}

fn to_ms(secs: i64) -> Option<i64> {
    secs.checked_mul(1000)
}

#[cfg(test)]
mod tests;
