//! The schedule trigger: when it fires (presets or cron in a time zone, computed by
//! `flowgate_model::schedule`) and what happens to slots missed while no scheduler ran. The
//! leader's `scheduler` fires it.

use flowgate_model::Missed;
use flowgate_model::schedule::Schedule;
use flowgate_model::trigger::{DEFAULT_MAX_MISSED, ScheduleTrigger};

/// A schedule trigger.
pub struct ScheduleSpec {
    /// When it fires.
    pub schedule: Schedule,
    /// What happens to slots missed while the server was down.
    pub missed: Missed,
    /// Most missed slots `missed: all` runs.
    pub max_missed: u32,
}

/// The compiled schedule; none when it cannot be computed (the model's checks reported why).
pub(crate) fn compile(t: &ScheduleTrigger) -> Option<ScheduleSpec> {
    Some(ScheduleSpec {
        schedule: t.schedule()?,
        missed: t.missed,
        max_missed: t.max_missed.unwrap_or(DEFAULT_MAX_MISSED),
    })
}
