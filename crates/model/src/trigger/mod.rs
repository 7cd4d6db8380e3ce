//! Triggers: what starts a flow's executions. Exactly one per flow.
//!
//! This file holds the [`Trigger`] enum and the settings-less [`ManualTrigger`] (manual
//! runs, `deploy` and `undeploy`); each other kind's settings are in their own module:
//! `webhook` (and `verify`, its signature checks), `schedule`, `email`, `poll` and the
//! brokers' (`broker`: `amqp`, `nats`, `mqtt`). All are
//! re-exported here.

mod broker;
mod email;
mod poll;
mod schedule;
mod verify;
mod webhook;

pub use broker::{AmqpTrigger, MqttTrigger, NatsTrigger};
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
    /// Messages consumed from an AMQP 0-9-1 queue (RabbitMQ), acknowledged once committed.
    Amqp(AmqpTrigger),
    /// Messages of a durable NATS JetStream consumer, acknowledged once committed.
    Nats(NatsTrigger),
    /// Messages on an MQTT topic filter (QoS 1, persistent session), acknowledged once committed.
    Mqtt(MqttTrigger),
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
            Trigger::Amqp(_) => "amqp",
            Trigger::Nats(_) => "nats",
            Trigger::Mqtt(_) => "mqtt",
            Trigger::Deploy(_) => "deploy",
            Trigger::Undeploy(_) => "undeploy",
        }
    }
}

/// A manual trigger has no settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ManualTrigger {}
