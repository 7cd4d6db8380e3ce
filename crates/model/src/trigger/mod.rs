//! Triggers: what starts a flow's executions. Exactly one per flow.
//!
//! This file holds the [`Trigger`] enum and the settings-less [`ManualTrigger`] (manual
//! runs, `deploy` and `undeploy`); each other kind's settings are in their own module:
//! `webhook` (and `verify`, its signature checks), `schedule`, `email` and `poll`. All are
//! re-exported here.

mod email;
mod poll;
mod schedule;
mod verify;
mod webhook;

pub use email::{EmailTrigger, is_mail_address};
pub use poll::{DEFAULT_MAX_PAGES, DEFAULT_REMEMBER, FirstRun, Paginate, PollTrigger};
pub use schedule::{DEFAULT_MAX_MISSED, Missed, ScheduleTrigger};
pub use verify::{
    DEFAULT_SIGNATURE_TOLERANCE, DEFAULT_STRIPE_TOLERANCE, GithubVerify, HMAC_ALGORITHMS, HmacVerify, IntuitVerify,
    PayloadPart, SIGNATURE_ENCODINGS, StandardWebhooksVerify, StripeVerify, VerifyScheme, WebhookVerify, parse_payload,
};
pub use webhook::{ApiKey, MAX_RESPOND_TIMEOUT, Method, QueryParam, Respond, RespondMode, WebhookAuth, WebhookTrigger};

use schemars::JsonSchema;
use serde::Deserialize;

/// What starts the flow.
#[allow(clippy::large_enum_variant)] // parsed once per apply, never on a hot path
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// An HTTP request to `/hooks/<tenant>/<path>`.
    Webhook(WebhookTrigger),
    /// Only runs started through the API or CLI (`POST …/flows/<flow>/run`).
    Manual(ManualTrigger),
    /// On a schedule: a preset (`every: 15min`) or a cron expression in a time zone.
    Schedule(ScheduleTrigger),
    /// A mail received by the built-in SMTP receiver (`flowgate serve --smtp-listen`).
    Email(EmailTrigger),
    /// On a schedule, an HTTP request whose new items each start an execution.
    Poll(PollTrigger),
    /// When the integration is deployed, upgraded or its config changes.
    Deploy(ManualTrigger),
    /// When the integration is undeployed or deleted.
    Undeploy(ManualTrigger),
}

impl Trigger {
    /// The trigger's key (`webhook`, `manual`).
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Webhook(_) => "webhook",
            Trigger::Manual(_) => "manual",
            Trigger::Schedule(_) => "schedule",
            Trigger::Email(_) => "email",
            Trigger::Poll(_) => "poll",
            Trigger::Deploy(_) => "deploy",
            Trigger::Undeploy(_) => "undeploy",
        }
    }
}

/// A manual trigger has no settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ManualTrigger {}
