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
mod tests {
    use super::*;
    use chrono::Utc;

    /// Epoch milliseconds of a UTC date and time.
    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().map(|d| d.timestamp_millis()).unwrap_or(i64::MIN)
    }

    fn utc_s(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        utc(y, mo, d, h, mi) + i64::from(s) * 1000
    }

    fn every(text: &str, tz: Option<&str>) -> Schedule {
        match Schedule::parse(Some(text), None, tz) {
            Ok(s) => s,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn cron(text: &str, tz: Option<&str>) -> Schedule {
        match Schedule::parse(None, Some(text), tz) {
            Ok(s) => s,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn field_of(every: Option<&str>, cron: Option<&str>, tz: Option<&str>) -> &'static str {
        match Schedule::parse(every, cron, tz) {
            Ok(s) => panic!("{every:?} {cron:?} {tz:?} parsed as {s:?}"),
            Err(e) => e.field,
        }
    }

    /// Shows instants as readable UTC times in failure messages.
    fn show(slots: &[i64]) -> Vec<String> {
        slots
            .iter()
            .map(|ms| {
                DateTime::from_timestamp_millis(*ms).map_or("?".into(), |d| d.format("%Y-%m-%d %H:%M:%S").to_string())
            })
            .collect()
    }

    fn assert_slots(got: Vec<i64>, want: &[i64]) {
        assert_eq!(show(&got), show(want));
    }

    #[test]
    fn is_send_sync_clone_debug() {
        fn check<T: Send + Sync + Clone + fmt::Debug>() {}
        check::<Schedule>();
        check::<ScheduleError>();
    }

    #[test]
    fn presets_align_in_utc() {
        let from = utc_s(2026, 1, 1, 10, 7, 30); // a Thursday
        let h = |hh, mm| utc(2026, 1, 1, hh, mm);
        assert_slots(every("1min", None).upcoming(from, 3), &[h(10, 8), h(10, 9), h(10, 10)]);
        assert_slots(every("5min", None).upcoming(from, 3), &[h(10, 10), h(10, 15), h(10, 20)]);
        assert_slots(every("15min", None).upcoming(from, 4), &[h(10, 15), h(10, 30), h(10, 45), h(11, 0)]);
        assert_slots(every("1hr", None).upcoming(from, 2), &[h(11, 0), h(12, 0)]);
        assert_slots(every("hourly", None).upcoming(from, 2), &[h(11, 0), h(12, 0)]);
        assert_slots(every("12hr", None).upcoming(from, 3), &[h(12, 0), utc(2026, 1, 2, 0, 0), utc(2026, 1, 2, 12, 0)]);
        assert_slots(every("daily", None).upcoming(from, 2), &[utc(2026, 1, 2, 0, 0), utc(2026, 1, 3, 0, 0)]);
        assert_slots(every("weekly", None).upcoming(from, 2), &[utc(2026, 1, 5, 0, 0), utc(2026, 1, 12, 0, 0)]);
        assert_slots(every("monthly", None).upcoming(from, 2), &[utc(2026, 2, 1, 0, 0), utc(2026, 3, 1, 0, 0)]);
        // Other divisors, short forms, case and spaces.
        assert_slots(every("20m", None).upcoming(from, 3), &[h(10, 20), h(10, 40), h(11, 0)]);
        assert_slots(every(" 30MIN ", None).upcoming(from, 2), &[h(10, 30), h(11, 0)]);
        assert_slots(every("60min", None).upcoming(from, 1), &[h(11, 0)]);
        assert_slots(every("6h", None).upcoming(from, 2), &[h(12, 0), h(18, 0)]);
        assert_slots(every("3hr", None).upcoming(from, 2), &[h(12, 0), h(15, 0)]);
        assert_slots(every("24hr", None).upcoming(from, 1), &[utc(2026, 1, 2, 0, 0)]);
        // Exactly on a slot: strictly after.
        assert_eq!(every("15min", None).next_after(h(10, 15)), Some(h(10, 30)));
        assert_eq!(every("15min", None).next_after(h(10, 15) - 1), Some(h(10, 15)));
    }

    #[test]
    fn presets_align_in_other_zones() {
        // Oslo in winter is UTC+1: local midnight is 23:00 UTC.
        let oslo = Some("Europe/Oslo");
        let from = utc(2026, 1, 1, 10, 7); // Thursday
        assert_slots(every("daily", oslo).upcoming(from, 2), &[utc(2026, 1, 1, 23, 0), utc(2026, 1, 2, 23, 0)]);
        assert_slots(every("weekly", oslo).upcoming(from, 1), &[utc(2026, 1, 4, 23, 0)]);
        assert_slots(every("monthly", oslo).upcoming(from, 1), &[utc(2026, 1, 31, 23, 0)]);
        assert_slots(every("12hr", oslo).upcoming(from, 2), &[utc(2026, 1, 1, 11, 0), utc(2026, 1, 1, 23, 0)]);
        // Kolkata is UTC+5:30: hours and quarter hours fall on :30 / :00 UTC.
        let kolkata = Some("Asia/Kolkata");
        assert_slots(every("1hr", kolkata).upcoming(from, 2), &[utc(2026, 1, 1, 10, 30), utc(2026, 1, 1, 11, 30)]);
        assert_slots(every("daily", kolkata).upcoming(from, 1), &[utc(2026, 1, 1, 18, 30)]);
        // Kathmandu is UTC+5:45: 15min is still on UTC quarter hours, 30min is not.
        let kathmandu = Some("Asia/Kathmandu");
        assert_slots(every("15min", kathmandu).upcoming(from, 2), &[utc(2026, 1, 1, 10, 15), utc(2026, 1, 1, 10, 30)]);
        assert_slots(every("30min", kathmandu).upcoming(from, 2), &[utc(2026, 1, 1, 10, 15), utc(2026, 1, 1, 10, 45)]);
        // New York in winter is UTC-5.
        let ny = Some("America/New_York");
        assert_slots(every("daily", ny).upcoming(from, 1), &[utc(2026, 1, 2, 5, 0)]);
        assert_eq!(every("daily", ny).timezone(), "America/New_York");
    }

    #[test]
    fn errors_name_their_field() {
        assert_eq!(field_of(None, None, None), "");
        assert_eq!(field_of(Some("15min"), Some("* * * * *"), None), "");
        for bad in
            ["", "7min", "0min", "90min", "5hr", "0h", "48hr", "fortnightly", "15", "min", "-5min", "+5min", "1.5hr"]
        {
            assert_eq!(field_of(Some(bad), None, None), "every", "{bad:?}");
        }
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "* 24 * * *",
            "*/0 * * * *",
            "0 0 * * FOO",
            "0 0 0 1 1 * 2030",
            "@daily",
            "x y z a b",
            "0 0 30 2 *",
            "0 0 31 4,6,9,11 *",
        ] {
            assert_eq!(field_of(None, Some(bad), None), "cron", "{bad:?}");
        }
        for bad in ["", "Mars/Olympus", "Europe/Olso", "CEST+2"] {
            assert_eq!(field_of(Some("daily"), None, Some(bad)), "timezone", "{bad:?}");
            assert_eq!(field_of(None, Some("* * * * *"), Some(bad)), "timezone", "{bad:?}");
        }
        let e = Schedule::parse(Some("7min"), None, None).err();
        assert!(e.is_some_and(|e| e.message.contains("15min") && e.message.contains("monthly")));
        let e = Schedule::parse(None, Some("61 * * * *"), None).err();
        assert!(e.is_some_and(|e| e.message.contains("out of bounds") && e.message.contains("5 fields")));
        let e = Schedule::parse(None, None, Some("Mars/Olympus")).err();
        assert!(e.is_some_and(|e| e.message.contains("IANA") && e.message.contains("Europe/Oslo")));
        let e = Schedule::parse(None, Some("0 0 30 2 *"), None).err();
        assert!(e.is_some_and(|e| e.message.contains("never fires")));
        let e = Schedule::parse(None, None, None).err();
        assert!(e.is_some_and(|e| e.to_string().contains("neither")));
    }

    #[test]
    fn cron_with_names_and_seconds() {
        // 2026-01-09 is a Friday; Oslo is UTC+1.
        let weekdays = cron("0 7 * * MON-FRI", Some("Europe/Oslo"));
        assert_slots(weekdays.upcoming(utc(2026, 1, 9, 7, 0), 2), &[utc(2026, 1, 12, 6, 0), utc(2026, 1, 13, 6, 0)]);
        assert_eq!(weekdays.describe(), "cron 0 7 * * MON-FRI");
        let months = cron("0  0 1   JAN,jul *", None);
        assert_slots(months.upcoming(utc(2026, 3, 1, 0, 0), 2), &[utc(2026, 7, 1, 0, 0), utc(2027, 1, 1, 0, 0)]);
        assert_eq!(months.describe(), "cron 0 0 1 JAN,jul *");
        let seconds = cron("*/20 * * * * *", None);
        let from = utc_s(2026, 1, 1, 0, 0, 5);
        assert_slots(
            seconds.upcoming(from, 4),
            &[
                utc_s(2026, 1, 1, 0, 0, 20),
                utc_s(2026, 1, 1, 0, 0, 40),
                utc(2026, 1, 1, 0, 1),
                utc_s(2026, 1, 1, 0, 1, 20),
            ],
        );
        let at = cron("30 15 10 * * *", None);
        assert_slots(at.upcoming(from, 1), &[utc_s(2026, 1, 1, 10, 15, 30)]);
        // Steps and ranges.
        let steps = cron("10-40/15 9-10 * * *", None);
        assert_slots(
            steps.upcoming(from, 5),
            &[
                utc(2026, 1, 1, 9, 10),
                utc(2026, 1, 1, 9, 25),
                utc(2026, 1, 1, 9, 40),
                utc(2026, 1, 1, 10, 10),
                utc(2026, 1, 1, 10, 25),
            ],
        );
        // Milliseconds are floored to the second: a slot is strictly after.
        assert_eq!(at.next_after(utc_s(2026, 1, 1, 10, 15, 30) + 999), Some(utc_s(2026, 1, 2, 10, 15, 30)));
        assert_eq!(at.next_after(utc_s(2026, 1, 1, 10, 15, 30) - 1), Some(utc_s(2026, 1, 1, 10, 15, 30)));
    }

    #[test]
    fn spring_forward_skipped_time_fires_once_after_the_gap() {
        // Oslo 2026-03-29: 02:00 CET → 03:00 CEST (01:00 UTC).
        let s = cron("30 2 * * *", Some("Europe/Oslo"));
        assert_slots(
            s.upcoming(utc(2026, 3, 27, 12, 0), 4),
            &[utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)],
        );
        assert_eq!(s.latest_at_or_before(utc(2026, 3, 29, 12, 0)), Some(utc(2026, 3, 29, 1, 0)));
        assert_eq!(s.latest_at_or_before(utc(2026, 3, 29, 1, 0)), Some(utc(2026, 3, 29, 1, 0)));
        assert_eq!(s.latest_at_or_before(utc(2026, 3, 29, 1, 0) - 1), Some(utc(2026, 3, 28, 1, 30)));
        // Several skipped times collapse into one slot; 03:00 is not matched by hour 2.
        let quarter_of_two = cron("*/15 2 * * *", Some("Europe/Oslo"));
        assert_slots(
            quarter_of_two.slots_between(utc(2026, 3, 28, 12, 0), utc(2026, 3, 30, 1, 0), 10),
            &[
                utc(2026, 3, 29, 1, 0),
                utc(2026, 3, 30, 0, 0),
                utc(2026, 3, 30, 0, 15),
                utc(2026, 3, 30, 0, 30),
                utc(2026, 3, 30, 0, 45),
            ],
        );
        // A skipped time and 03:00 itself are one slot, not two.
        let two_and_three = cron("0 2,3 * * *", Some("Europe/Oslo"));
        assert_slots(
            two_and_three.slots_between(utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 12, 0), 10),
            &[utc(2026, 3, 29, 1, 0)],
        );
        // New York 2026-03-08: 02:00 EST → 03:00 EDT (07:00 UTC).
        let ny = cron("30 2 * * *", Some("America/New_York"));
        assert_slots(
            ny.upcoming(utc(2026, 3, 7, 0, 0), 3),
            &[utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)],
        );
    }

    #[test]
    fn fall_back_repeated_time_fires_once_at_first_occurrence() {
        // Oslo 2026-10-25: 03:00 CEST → 02:00 CET (01:00 UTC); 02:30 is 00:30 and 01:30 UTC.
        let s = cron("30 2 * * *", Some("Europe/Oslo"));
        assert_slots(
            s.upcoming(utc(2026, 10, 23, 12, 0), 3),
            &[utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
        );
        assert_eq!(s.next_after(utc(2026, 10, 25, 0, 30)), Some(utc(2026, 10, 26, 1, 30)));
        assert_eq!(s.next_after(utc(2026, 10, 25, 1, 10)), Some(utc(2026, 10, 26, 1, 30)));
        assert_eq!(s.latest_at_or_before(utc(2026, 10, 25, 1, 45)), Some(utc(2026, 10, 25, 0, 30)));
        assert_eq!(s.latest_at_or_before(utc(2026, 10, 25, 0, 29)), Some(utc(2026, 10, 24, 0, 30)));
        let quarter_of_two = cron("*/15 2 * * *", Some("Europe/Oslo"));
        assert_slots(
            quarter_of_two.slots_between(utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 12, 0), 10),
            &[utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 15), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 0, 45)],
        );
        assert_eq!(quarter_of_two.latest_at_or_before(utc(2026, 10, 25, 1, 50)), Some(utc(2026, 10, 25, 0, 45)));
        // New York 2026-11-01: 02:00 EDT → 01:00 EST; 01:30 is 05:30 and 06:30 UTC.
        let ny = cron("30 1 * * *", Some("America/New_York"));
        assert_slots(
            ny.upcoming(utc(2026, 10, 31, 12, 0), 3),
            &[utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30), utc(2026, 11, 3, 6, 30)],
        );
    }

    /// `count` slots `step` minutes apart from `start`.
    fn evenly(start: i64, step_min: i64, count: i64) -> Vec<i64> {
        (0..count).map(|i| start + i * step_min * 60_000).collect()
    }

    #[test]
    fn sub_hour_presets_run_in_real_time_across_both_changes() {
        let oslo = Some("Europe/Oslo");
        for s in [every("15min", oslo), cron("*/15 * * * *", oslo)] {
            // Spring-forward: 01:45 CET (00:45 UTC) then 03:00 CEST (01:00 UTC).
            assert_slots(s.upcoming(utc(2026, 3, 29, 0, 20), 8), &evenly(utc(2026, 3, 29, 0, 30), 15, 8));
            // Fall-back: both passes of 02:00–02:45 fire, every 15 minutes of real time.
            let fall = evenly(utc(2026, 10, 24, 23, 45), 15, 14);
            assert_slots(s.upcoming(utc(2026, 10, 24, 23, 30), 14), &fall);
            let until_two: Vec<i64> = fall.iter().copied().filter(|ms| *ms <= utc(2026, 10, 25, 2, 0)).collect();
            assert_slots(s.slots_between(utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 2, 0), 100), &until_two);
            // From inside either pass.
            assert_eq!(s.next_after(utc(2026, 10, 25, 0, 50)), Some(utc(2026, 10, 25, 1, 0)));
            assert_eq!(s.next_after(utc(2026, 10, 25, 1, 20)), Some(utc(2026, 10, 25, 1, 30)));
            assert_eq!(s.latest_at_or_before(utc(2026, 10, 25, 1, 10)), Some(utc(2026, 10, 25, 1, 0)));
            assert_eq!(s.latest_at_or_before(utc(2026, 10, 25, 0, 59)), Some(utc(2026, 10, 25, 0, 45)));
            assert_eq!(s.latest_at_or_before(utc(2026, 10, 25, 2, 10)), Some(utc(2026, 10, 25, 2, 0)));
        }
        // Hourly too: every real hour (02:00 CEST and 02:00 CET).
        let hourly = every("1hr", oslo);
        assert_slots(hourly.upcoming(utc(2026, 10, 24, 22, 30), 5), &evenly(utc(2026, 10, 24, 23, 0), 60, 5));
        assert_slots(hourly.upcoming(utc(2026, 3, 28, 22, 30), 4), &evenly(utc(2026, 3, 28, 23, 0), 60, 4));
        // New York: 5min through both changes.
        let ny = every("5min", Some("America/New_York"));
        assert_slots(ny.upcoming(utc(2026, 3, 8, 6, 50), 6), &evenly(utc(2026, 3, 8, 6, 55), 5, 6));
        assert_slots(ny.upcoming(utc(2026, 11, 1, 5, 50), 30), &evenly(utc(2026, 11, 1, 5, 55), 5, 30));
    }

    #[test]
    fn daily_follows_local_midnight() {
        let s = every("daily", Some("Europe/Oslo"));
        assert_slots(
            s.upcoming(utc(2026, 3, 27, 12, 0), 3),
            &[utc(2026, 3, 27, 23, 0), utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 22, 0)],
        );
        assert_slots(
            s.upcoming(utc(2026, 10, 23, 12, 0), 3),
            &[utc(2026, 10, 23, 22, 0), utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 23, 0)],
        );
        let twelve = every("12hr", Some("Europe/Oslo"));
        assert_slots(
            twelve.upcoming(utc(2026, 10, 24, 12, 0), 3),
            &[utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 11, 0), utc(2026, 10, 25, 23, 0)],
        );
    }

    /// The slots in `(start, end]` straight from the rules in the module doc, by looking at
    /// every 15 seconds of real time (independent of the search in `next_after`).
    fn brute_force(s: &Schedule, start: i64, end: i64) -> Vec<i64> {
        let matches = |wall: NaiveDateTime| s.cron.is_time_matching(&wall.and_utc()).unwrap_or(false);
        let mut slots = Vec::new();
        let mut u = start / 1000 + 15 - (start / 1000).rem_euclid(15);
        while u * 1000 <= end {
            let (Some(offset), Some(prev)) = (s.offset_at(u), s.offset_at(u - 1)) else { break };
            let Some(wall) = naive(u + offset) else { break };
            // The second pass of a repeated wall-clock time is a slot only in real time.
            let second_pass =
                matches!(s.tz.from_local_datetime(&wall), LocalResult::Ambiguous(a, _) if a.timestamp() != u);
            if matches(wall) && (s.every_hour || !second_pass) {
                slots.push(u * 1000);
            } else if offset > prev && !s.every_hour {
                // Just after a skip forward: does any skipped wall-clock time match?
                let skipped = (prev..offset).step_by(15).filter_map(|o| naive(u + o)).any(matches);
                if skipped {
                    slots.push(u * 1000);
                }
            }
            u += 15;
        }
        slots
    }

    #[test]
    fn search_agrees_with_brute_force_around_transitions() {
        let windows = [
            ("Europe/Oslo", utc(2026, 3, 28, 18, 0)),
            ("Europe/Oslo", utc(2026, 10, 24, 18, 0)),
            ("America/New_York", utc(2026, 3, 7, 23, 0)),
            ("America/New_York", utc(2026, 10, 31, 23, 0)),
            // Lord Howe moves by half an hour: 02:00 → 01:30 and 02:00 → 02:30.
            ("Australia/Lord_Howe", utc(2026, 4, 4, 8, 0)),
            ("Australia/Lord_Howe", utc(2026, 10, 3, 8, 0)),
            ("UTC", utc(2026, 3, 28, 18, 0)),
        ];
        let presets = ["1min", "15min", "30min", "1hr", "2hr", "daily"].map(|e| (Some(e), None));
        let crons = ["*/10 * * * *", "30 2 * * *", "0 2,3 * * *", "*/20 1-3 * * *", "15,45 */2 * * * *", "0 1 * * *"]
            .map(|c| (None, Some(c)));
        for (zone, start) in windows {
            let end = start + 15 * 3_600_000;
            for (e, c) in presets.into_iter().chain(crons) {
                let Ok(s) = Schedule::parse(e, c, Some(zone)) else { panic!("{e:?} {c:?}") };
                let want = brute_force(&s, start, end);
                let what = format!("{} in {zone}", s.describe());
                assert_eq!(show(&s.slots_between(start, end, 10_000)), show(&want), "{what}");
                let mut at = start;
                while at < end {
                    if let Some(next) = want.iter().copied().find(|x| *x > at) {
                        assert_eq!(s.next_after(at), Some(next), "next after {:?}: {what}", show(&[at]));
                    }
                    if let Some(latest) = want.iter().copied().rev().find(|x| *x <= at) {
                        assert_eq!(s.latest_at_or_before(at), Some(latest), "latest at {:?}: {what}", show(&[at]));
                    }
                    at += 4 * 60_000 + 7_500;
                }
            }
        }
    }

    #[test]
    fn slots_between_is_bounded_and_half_open() {
        let s = every("1min", None);
        let start = utc(2020, 1, 1, 0, 0);
        let far = utc(2030, 1, 1, 0, 0);
        let slots = s.slots_between(start, far, 1000);
        assert_eq!(slots.len(), 1000);
        assert_eq!(slots.first(), Some(&utc(2020, 1, 1, 0, 1)));
        assert_eq!(slots.last(), Some(&(start + 1000 * 60_000)));
        // (after, upto]: `after` excluded, `upto` included.
        assert_slots(s.slots_between(start, start + 180_000, 10), &evenly(start + 60_000, 1, 3));
        assert!(s.slots_between(start, start, 10).is_empty());
        assert!(s.slots_between(far, start, 10).is_empty());
        assert!(s.slots_between(start, far, 0).is_empty());
        assert!(s.upcoming(start, 0).is_empty());
        // Sparse: a yearly schedule over a century.
        let yearly = cron("0 0 1 1 *", Some("Europe/Oslo"));
        let years = yearly.slots_between(utc(2000, 6, 1, 0, 0), utc(2100, 6, 1, 0, 0), 1000);
        assert_eq!(years.len(), 100);
        assert_eq!(years.first(), Some(&utc(2000, 12, 31, 23, 0)));
    }

    #[test]
    fn latest_at_or_before_far_away_is_quick() {
        let monthly = every("monthly", Some("Europe/Oslo"));
        // Oslo is UTC+1 in winter and UTC+2 in summer (chrono-tz has summer time until 2099).
        assert_eq!(monthly.latest_at_or_before(utc(2080, 6, 15, 12, 0)), Some(utc(2080, 5, 31, 22, 0)));
        assert_eq!(monthly.latest_at_or_before(utc(2400, 2, 15, 12, 0)), Some(utc(2400, 1, 31, 23, 0)));
        assert_eq!(monthly.latest_at_or_before(utc(2026, 1, 31, 23, 0)), Some(utc(2026, 1, 31, 23, 0)));
        assert_eq!(monthly.latest_at_or_before(utc(2026, 1, 31, 23, 0) - 1), Some(utc(2025, 12, 31, 23, 0)));
        let leap = cron("0 12 29 2 *", None);
        assert_eq!(leap.latest_at_or_before(utc(2103, 6, 1, 0, 0)), Some(utc(2096, 2, 29, 12, 0)));
        assert_eq!(leap.next_after(utc(2096, 2, 29, 12, 0)), Some(utc(2104, 2, 29, 12, 0)));
        let started = std::time::Instant::now();
        for year in 2030..2130 {
            assert!(monthly.latest_at_or_before(utc(year, 3, 15, 0, 0)).is_some());
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn dense_schedules_near_transitions_stay_cheap() {
        let s = cron("* * * * * *", Some("Europe/Oslo"));
        let started = std::time::Instant::now();
        assert_eq!(s.next_after(utc(2026, 10, 25, 0, 59) + 59_000), Some(utc(2026, 10, 25, 1, 0)));
        assert_eq!(s.latest_at_or_before(utc(2026, 10, 25, 1, 0)), Some(utc(2026, 10, 25, 1, 0)));
        let run = s.slots_between(utc(2026, 10, 25, 0, 59), utc(2026, 10, 25, 1, 1), 1000);
        assert_slots(run, &(1..=120).map(|i| utc(2026, 10, 25, 0, 59) + i * 1000).collect::<Vec<_>>());
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn upcoming_and_describe() {
        let s = every("15min", Some("Europe/Oslo"));
        assert_slots(s.upcoming(utc(2026, 6, 1, 8, 1), 3), &evenly(utc(2026, 6, 1, 8, 15), 15, 3));
        assert_eq!(s.describe(), "every 15 minutes");
        assert_eq!(s.timezone(), "Europe/Oslo");
        assert_eq!(every("1min", None).describe(), "every minute");
        assert_eq!(every("hourly", None).describe(), "every hour");
        assert_eq!(every("12hr", None).describe(), "every 12 hours");
        assert_eq!(every("daily", None).describe(), "daily at 00:00");
        assert_eq!(every("weekly", None).describe(), "weekly on Monday at 00:00");
        assert_eq!(every("monthly", None).describe(), "monthly on the 1st at 00:00");
        assert_eq!(every("daily", None).timezone(), "UTC");
        assert_eq!(every("daily", Some("UTC")).timezone(), "UTC");
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        for s in [every("1min", None), every("monthly", Some("Europe/Oslo")), cron("0 0 29 2 *", Some("Pacific/Apia"))]
        {
            for ms in [
                i64::MIN,
                i64::MIN + 1,
                -1,
                0,
                1,
                i64::MAX - 1,
                i64::MAX,
                utc(4999, 12, 31, 0, 0),
                utc(5001, 1, 1, 0, 0),
            ] {
                let _ = s.next_after(ms);
                let _ = s.latest_at_or_before(ms);
                let _ = s.upcoming(ms, 3);
                let _ = s.slots_between(ms, i64::MAX, 3);
            }
            assert!(s.next_after(i64::MAX).is_none());
            assert!(s.latest_at_or_before(i64::MIN).is_none());
        }
        // Before 1970 works too.
        assert_eq!(every("daily", None).next_after(utc(1969, 7, 20, 20, 17)), Some(utc(1969, 7, 21, 0, 0)));
        // Samoa skipped 2011-12-30 entirely: a daily schedule fires at the first instant after.
        let apia = every("daily", Some("Pacific/Apia"));
        let slots = apia.upcoming(utc(2011, 12, 28, 12, 0), 3);
        assert_eq!(slots.len(), 3);
        assert!(slots.windows(2).all(|w| w[0] < w[1]));
    }
}
