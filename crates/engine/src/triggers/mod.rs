//! Triggers: what starts a flow, one module per kind, each with its compiled spec (built
//! from the definition when an integration version is compiled) and its runtime.
//!
//! - `webhook/`: the inbound spec (path, methods, query parameters, how the caller is
//!   answered), caller authentication with credentials resolved against the config and
//!   checked in constant time (`auth`), signature schemes (`verify`). The server only routes
//!   the request here and reads its body.
//! - `email`: the inbound address and allowed senders; the server's SMTP receiver hands a
//!   parsed message here.
//! - `schedule`: when a schedule fires and what happens to missed slots; `poll`: an HTTP
//!   source fetched on a schedule, its items deduplicated and its cursor kept. Both are run
//!   by the leader's `scheduler`.
//! - `brokers/`: messages from RabbitMQ, NATS JetStream and MQTT, consumed by the leader
//!   and acknowledged once their execution is committed.
//! - Manual and lifecycle (`deploy`, `undeploy`) triggers have no config and no runtime of
//!   their own: the API and `crate::deploy` start their flows.
//!
//! Adding a kind: its module here with a spec and a `compile`, a variant of
//! [`FlowTrigger`] and an arm in `compile`; its runtime beside it.

pub mod brokers;
pub mod email;
pub(crate) mod poll;
pub mod schedule;
pub(crate) mod scheduler;
pub mod webhook;

/// A text as written in a definition — a literal, or a template over `$config` — for this
/// deployment (webhook credentials, signing secrets, connections' settings).
pub(crate) use webhook::credential::resolve as resolve_config_text;

pub use brokers::BrokerSpec;
pub use email::InboundEmail;
pub use poll::{PaginateSpec, PollSpec};
pub use schedule::ScheduleSpec;
pub use webhook::{AuthSpec, InboundWebhook, KeyLocation};

use flowgate_model::schedule::Schedule;
use flowgate_model::trigger::Trigger;
use flowgate_model::{Diags, Path};
use serde_json::Value;

/// What starts a compiled flow.
#[allow(clippy::large_enum_variant)] // one per flow, built once
pub enum FlowTrigger {
    /// A webhook.
    Webhook(InboundWebhook),
    /// Only API/CLI runs.
    Manual,
    /// A schedule.
    Schedule(ScheduleSpec),
    /// Inbound e-mail.
    Email(InboundEmail),
    /// An HTTP source polled on a schedule.
    Poll(Box<PollSpec>),
    /// Messages from a broker (`amqp`, `nats`, `mqtt`), consumed by the leader.
    Broker(BrokerSpec),
    /// Runs when the integration is deployed, upgraded or reconfigured.
    Deploy,
    /// Runs when the integration is undeployed or deleted.
    Undeploy,
}

impl FlowTrigger {
    /// The trigger's key (`webhook`, `manual`, `schedule`, `email`, `poll`).
    pub fn kind(&self) -> &'static str {
        match self {
            FlowTrigger::Webhook(_) => "webhook",
            FlowTrigger::Manual => "manual",
            FlowTrigger::Schedule(_) => "schedule",
            FlowTrigger::Email(_) => "email",
            FlowTrigger::Poll(_) => "poll",
            FlowTrigger::Broker(b) => b.kind(),
            FlowTrigger::Deploy => "deploy",
            FlowTrigger::Undeploy => "undeploy",
        }
    }

    /// What a broker trigger consumes.
    pub fn broker(&self) -> Option<&BrokerSpec> {
        match self {
            FlowTrigger::Broker(b) => Some(b),
            _ => None,
        }
    }

    /// When it fires, for schedules and polls.
    pub fn schedule(&self) -> Option<&Schedule> {
        match self {
            FlowTrigger::Schedule(s) => Some(&s.schedule),
            FlowTrigger::Poll(p) => Some(&p.schedule),
            _ => None,
        }
    }
}

/// Compiles the trigger of the flow at `at`; `config` holds the deployment's values
/// (`missing`: some required ones are unset, so credentials may not resolve yet).
pub(crate) fn compile(trigger: &Trigger, config: &Value, missing: bool, at: &Path, diags: &mut Diags) -> FlowTrigger {
    let at = at.key("trigger");
    match trigger {
        Trigger::Webhook(w) => FlowTrigger::Webhook(webhook::compile(w, config, missing, &at.key("webhook"), diags)),
        Trigger::Manual(_) => FlowTrigger::Manual,
        Trigger::Deploy(_) => FlowTrigger::Deploy,
        Trigger::Undeploy(_) => FlowTrigger::Undeploy,
        Trigger::Schedule(t) => schedule::compile(t).map_or(FlowTrigger::Manual, FlowTrigger::Schedule),
        Trigger::Email(e) => FlowTrigger::Email(email::compile(e)),
        Trigger::Poll(p) => {
            poll::compile(p, &at.key("poll"), diags).map_or(FlowTrigger::Manual, |p| FlowTrigger::Poll(Box::new(p)))
        }
        Trigger::Amqp(t) => FlowTrigger::Broker(brokers::compile_amqp(t)),
        Trigger::Nats(t) => FlowTrigger::Broker(brokers::compile_nats(t)),
        Trigger::Mqtt(t) => FlowTrigger::Broker(brokers::compile_mqtt(t)),
    }
}
