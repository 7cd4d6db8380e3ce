//! The scheduler's missed-slot policies on a real schedule.

use super::{GRACE, slots_to_fire};
use crate::compile::ScheduleSpec;
use flowgate_model::Missed;
use flowgate_model::schedule::Schedule;

const MIN: i64 = 60_000;
/// 2026-01-05T00:00:00Z, a Monday.
const T0: i64 = 1_767_571_200_000;

fn spec(missed: Missed, max_missed: u32) -> ScheduleSpec {
    ScheduleSpec { schedule: Schedule::parse(Some("15min"), None, None).expect("preset"), missed, max_missed }
}

#[test]
fn on_time_slot_runs_under_every_policy() {
    for missed in [Missed::Skip, Missed::Last, Missed::All] {
        assert_eq!(slots_to_fire(&spec(missed, 100), T0, T0 + 15 * MIN, T0 + 15 * MIN + 200), vec![T0 + 15 * MIN]);
    }
}

#[test]
fn nothing_due_fires_nothing() {
    assert!(slots_to_fire(&spec(Missed::All, 100), T0, T0, T0 + 5 * MIN).is_empty());
}

#[test]
fn skip_runs_no_missed_slot() {
    // Down for an hour: four slots passed; the latest is already late.
    let now = T0 + 60 * MIN + GRACE + 1;
    assert!(slots_to_fire(&spec(Missed::Skip, 100), T0, T0 + 60 * MIN, now).is_empty());
    // Up again just as a slot is due: that one runs, the three before it do not.
    assert_eq!(slots_to_fire(&spec(Missed::Skip, 100), T0, T0 + 60 * MIN, T0 + 60 * MIN), vec![T0 + 60 * MIN]);
}

#[test]
fn last_runs_the_latest_once() {
    let now = T0 + 60 * MIN + GRACE + 1;
    assert_eq!(slots_to_fire(&spec(Missed::Last, 100), T0, T0 + 60 * MIN, now), vec![T0 + 60 * MIN]);
}

#[test]
fn all_runs_each_missed_slot_oldest_first_bounded() {
    let now = T0 + 60 * MIN + GRACE + 1;
    let want: Vec<i64> = (1..=4).map(|i| T0 + i * 15 * MIN).collect();
    assert_eq!(slots_to_fire(&spec(Missed::All, 100), T0, T0 + 60 * MIN, now), want);
    // A day down with at most 3: the three most recent.
    let day = T0 + 24 * 60 * MIN;
    let got = slots_to_fire(&spec(Missed::All, 3), T0, day, day + GRACE + 1);
    assert_eq!(got, vec![day - 30 * MIN, day - 15 * MIN, day]);
    // On time: the bound counts only missed slots.
    let got = slots_to_fire(&spec(Missed::All, 3), T0, day, day);
    assert_eq!(got.len(), 4);
}
