//! Schedule triggers: when a flow runs on a preset or a cron expression, and what happens
//! to the slots missed while the server was down. The timing check is shared with polls.

use crate::diag::{Diags, Path};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a schedule does about slots that passed while the server was down (or the flow was
/// being applied): `skip` (default) runs none of them, `last` runs the latest once, `all`
/// runs each (at most `maxMissed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Missed {
    /// Run none of the missed slots; wait for the next one.
    #[default]
    Skip,
    /// Run once, for the latest missed slot.
    Last,
    /// Run every missed slot, oldest first (at most `maxMissed`).
    All,
}

/// Most missed slots `missed: all` runs by default.
pub const DEFAULT_MAX_MISSED: u32 = 100;

/// When a schedule fires. Exactly one of `every` and `cron`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ScheduleTrigger {
    /// A preset aligned to the wall clock in `timezone`: `1min`, `5min`, `15min`, `1hr`,
    /// `12hr`, `daily` (00:00), `weekly` (Monday 00:00), `monthly` (the 1st, 00:00); also any
    /// number of minutes that divides an hour or of hours that divides a day (`10min`, `6hr`).
    #[serde(default)]
    pub every: Option<String>,
    /// A cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with
    /// seconds first. Names (`MON-FRI`, `JAN`), ranges, lists and steps are allowed.
    #[serde(default)]
    pub cron: Option<String>,
    /// IANA time zone the schedule is read in (`Europe/Oslo`). Default `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Slots missed while the server was down: `skip` (default), `last` or `all`.
    #[serde(default)]
    pub missed: Missed,
    /// Most missed slots `missed: all` runs (default 100).
    #[serde(default)]
    pub max_missed: Option<u32>,
}

impl ScheduleTrigger {
    pub(crate) fn check(&self, path: &Path, diags: &mut Diags) {
        check_timing(self.every.as_deref(), self.cron.as_deref(), self.timezone.as_deref(), path, diags);
        if self.max_missed == Some(0) {
            diags.error(&path.key("maxMissed"), "maxMissed must be at least 1");
        }
    }

    /// The compiled schedule (`None` when the trigger does not check).
    pub fn schedule(&self) -> Option<crate::schedule::Schedule> {
        crate::schedule::Schedule::parse(self.every.as_deref(), self.cron.as_deref(), self.timezone.as_deref()).ok()
    }
}

/// Reports a timing (`every` / `cron` / `timezone`) that does not parse, at the field at fault.
pub(super) fn check_timing(
    every: Option<&str>,
    cron: Option<&str>,
    timezone: Option<&str>,
    path: &Path,
    diags: &mut Diags,
) {
    if let Err(e) = crate::schedule::Schedule::parse(every, cron, timezone) {
        let at = if e.field.is_empty() { path.clone() } else { path.key(e.field) };
        diags.error(&at, e.message);
    }
}
