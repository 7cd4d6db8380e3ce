//! Flowgate's definition format (DESIGN §2): integrations, flows, triggers and steps.
//!
//! A document (YAML or JSON) is parsed with positions ([`source`]), decoded piece by piece so
//! that *every* problem is reported with its location ([`decode`], [`diag`]), and checked
//! for what types cannot say (slugs, unique ids and webhook paths). Expressions are compiled
//! later, by the engine, which adds its problems to the same [`Diags`]. No I/O here.
//!
//! # Layout
//! - [`source`]: YAML/JSON text → JSON value + line/column of each node.
//! - [`diag`]: paths, positions and the problem list.
//! - [`decode`]: typed decoding that collects problems instead of stopping.
//! - [`integration`]: integrations, flows and config variables.
//! - [`connection`]: connections (`connections:`), the credentials steps use by name.
//! - [`trigger`]: triggers (webhook, manual, schedule, email, poll); the [`Trigger`] enum
//!   and the settings-less manual/`deploy`/`undeploy` trigger in `trigger/mod.rs`, then:
//!   - `trigger::webhook`: webhook path, methods, caller auth, query parameters, `respond`;
//!   - `trigger::verify`: webhook signature schemes (Standard Webhooks, GitHub, Stripe, HMAC);
//!   - `trigger::schedule`: schedule triggers and missed slots (the timing check polls share);
//!   - `trigger::email`: e-mail triggers and sender patterns;
//!   - `trigger::poll`: poll triggers, pagination, identity and cursor.
//! - [`schedule`]: when schedules fire (presets and cron in a time zone, DST included).
//! - [`step`]: step options and the [`StepKind`] trait the `steps` crate implements.
//! - [`duration`]: `100ms`, `5s`, `5min`, `1h`, `1d`.
//! - [`tests_def`]: flow test cases (`tests:`) and their checks.
//! - [`outbound`]: outbound webhooks (the `webhook` step and step hooks).
//! - `tests` (tests only): unit tests of decoding, located problems and the schema.

#![warn(missing_docs)]

pub mod connection;
pub mod decode;
pub mod diag;
pub mod duration;
pub mod integration;
pub mod outbound;
pub mod schedule;
pub mod source;
pub mod step;
pub mod tests_def;
pub mod trigger;

#[cfg(test)]
mod tests;

pub use connection::Connection;
pub use diag::{Diagnostic, Diags, Path, Seg};
pub use duration::Dur;
pub use integration::{
    ConfigType, ConfigVar, Diagnostics, Flow, FlowDoc, Integration, IntegrationDoc, OnExhausted, RateLimit, Retention,
    decode_integration, is_slug,
};
pub use source::{Document, Format};
pub use step::{OnError, RetryPolicy, StepDef, StepKind, StepOptions};
pub use trigger::{
    EmailTrigger, FirstRun, Method, Missed, Paginate, PollTrigger, RespondMode, ScheduleTrigger, Trigger, WebhookAuth,
    WebhookTrigger,
};

/// The JSON Schema of integration documents whose steps are `S`.
pub fn schema<S: StepKind>() -> schemars::Schema
where
    Flow<S>: schemars::JsonSchema,
{
    let mut s = schemars::SchemaGenerator::default().into_root_schema_for::<Integration<S>>();
    s.insert("title".into(), "Flowgate integration".into());
    s
}
