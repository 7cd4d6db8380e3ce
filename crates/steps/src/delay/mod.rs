//! `delay`: a durable timer.
//!
//! ```yaml
//! - id: wait-a-day
//!   delay: { for: 24h }
//! - id: until-monday
//!   delay: { until: '$trigger.body.remindAt' }   # an RFC 3339 time, or seconds since the epoch
//! ```
//! The step asks the engine to resume the execution at a time ([`crate::Outcome::Delay`]): a
//! short delay is slept in place; a longer one parks the execution in the queue without a
//! worker, recorded in the journal as `waiting` with the time, so whichever node is up then
//! resumes it, a restart in between changes nothing, and a cancel works while it waits. The
//! time is computed once (`for` counts from the first attempt, not from a resume). Output:
//! `{until}` (RFC 3339).

#[cfg(test)]
mod tests;

use crate::{Outcome, Step, StepCx, StepError, util};
use async_trait::async_trait;
use flowgate_expr::Template;
use flowgate_model::{Diags, Dur, Path};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// A durable timer: `for` a duration, or `until` a time.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct DelayConfig {
    /// How long to wait, counted from the step's first attempt (`30s`, `1h`, `7d`).
    #[serde(default, rename = "for")]
    pub duration: Option<Dur>,
    /// jq giving when to go on: an RFC 3339 time (`2027-01-04T09:00:00Z`) or seconds since
    /// the epoch (jq's `now + 3600`). A time already past goes on at once.
    #[serde(default)]
    pub until: Option<String>,
}

/// Until when a `delay` step waits, as the engine resolves it with its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    /// This long after the step's first attempt.
    For(std::time::Duration),
    /// Until this time (ms since the epoch).
    Until(i64),
}

impl crate::Kind for DelayConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        flowgate_model::decode::decode(value, path, diags)
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<Self>()
    }

    fn compile(&self, _: &crate::PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        match (&self.duration, &self.until) {
            (Some(d), None) => Some(Box::new(DelayStep::For(d.0))),
            (None, Some(src)) => Some(Box::new(DelayStep::Until(util::expr(src, &path.key("until"), diags)?))),
            _ => {
                diags.error(path, "set exactly one of `for` (a duration) and `until` (jq giving a time)");
                None
            }
        }
    }
}

enum DelayStep {
    For(std::time::Duration),
    Until(Arc<Template>),
}

#[async_trait]
impl Step for DelayStep {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        Ok(Outcome::Delay(match self {
            DelayStep::For(d) => Delay::For(*d),
            DelayStep::Until(expr) => Delay::Until(time_of(&cx.evaluator.eval(expr, input, &cx.scope).await?)?),
        }))
    }
}

/// A time from `until`: RFC 3339 text or seconds since the epoch, as ms.
pub(crate) fn time_of(v: &Value) -> Result<i64, StepError> {
    let bad = || {
        StepError::fatal(
            "delay_time",
            format!("`until` gave {}: expected an RFC 3339 time or seconds since the epoch", crate::connector::text(v)),
        )
    };
    match v {
        Value::Number(n) => {
            n.as_f64().filter(|s| s.is_finite() && *s >= 0.0).map(|s| (s * 1000.0) as i64).ok_or_else(bad)
        }
        Value::String(s) => time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}
