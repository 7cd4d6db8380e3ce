//! When schedules fire: presets and cron in time zones, across daylight-saving changes.

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
    for bad in ["", "7min", "0min", "90min", "5hr", "0h", "48hr", "fortnightly", "15", "min", "-5min", "+5min", "1.5hr"]
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
        &[utc_s(2026, 1, 1, 0, 0, 20), utc_s(2026, 1, 1, 0, 0, 40), utc(2026, 1, 1, 0, 1), utc_s(2026, 1, 1, 0, 1, 20)],
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
        let second_pass = matches!(s.tz.from_local_datetime(&wall), LocalResult::Ambiguous(a, _) if a.timestamp() != u);
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
    for s in [every("1min", None), every("monthly", Some("Europe/Oslo")), cron("0 0 29 2 *", Some("Pacific/Apia"))] {
        for ms in
            [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX, utc(4999, 12, 31, 0, 0), utc(5001, 1, 1, 0, 0)]
        {
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
