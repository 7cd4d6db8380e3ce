//! Broker triggers: flows started by messages consumed from a queue (AMQP 0-9-1), a durable
//! JetStream consumer (NATS) or a topic filter (MQTT), through a connection of that kind.
//! A message is acknowledged only once its execution is committed.

use crate::diag::{Diags, Path};
use crate::duration::Dur;

use schemars::JsonSchema;
use serde::Deserialize;

/// Messages of an AMQP queue (RabbitMQ).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct AmqpTrigger {
    /// An `amqp` connection of the integration.
    pub connection: String,
    /// The queue consumed (it must exist, unless `declare`).
    pub queue: String,
    /// Messages delivered but not yet acknowledged, at most (backpressure). Default 64.
    #[serde(default)]
    pub prefetch: Option<u16>,
    /// Declare the queue (durable) if it does not exist. Default false.
    #[serde(default)]
    pub declare: bool,
    /// jq giving a message's identity (e.g. `$trigger.body.orderId`): a repeat within
    /// `dedupWindow` starts nothing. Replaces the broker's own identity (AMQP `message-id`,
    /// the NATS sequence); MQTT has none without it.
    #[serde(default)]
    pub dedup_key: Option<String>,
    /// How long an identity is remembered. Default 24h.
    #[serde(default)]
    pub dedup_window: Option<Dur>,
}

/// Messages of a durable JetStream consumer (NATS).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct NatsTrigger {
    /// A `nats` connection of the integration.
    pub connection: String,
    /// The stream.
    pub stream: String,
    /// The durable consumer's name (made, pull-based with explicit acks, if it does not exist).
    pub consumer: String,
    /// Only the stream's messages on this subject (wildcards allowed). Default: all.
    #[serde(default)]
    pub subject: Option<String>,
    /// How long a message delivered but not acknowledged waits before it is delivered again.
    /// Default 30s.
    #[serde(default)]
    pub ack_wait: Option<Dur>,
    /// jq giving a message's identity (e.g. `$trigger.body.orderId`): a repeat within
    /// `dedupWindow` starts nothing. Replaces the broker's own identity (AMQP `message-id`,
    /// the NATS sequence); MQTT has none without it.
    #[serde(default)]
    pub dedup_key: Option<String>,
    /// How long an identity is remembered. Default 24h.
    #[serde(default)]
    pub dedup_window: Option<Dur>,
}

/// Messages on an MQTT topic filter, with a persistent session.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct MqttTrigger {
    /// An `mqtt` connection of the integration (its `clientId` names the persistent session).
    pub connection: String,
    /// The topic filter (`sensors/+/temp`, `orders/#`).
    pub topic: String,
    /// 1 (default: at least once, acknowledged after the commit) or 0 (at most once).
    #[serde(default)]
    pub qos: Option<u8>,
    /// jq giving a message's identity (e.g. `$trigger.body.orderId`): a repeat within
    /// `dedupWindow` starts nothing. Replaces the broker's own identity (AMQP `message-id`,
    /// the NATS sequence); MQTT has none without it.
    #[serde(default)]
    pub dedup_key: Option<String>,
    /// How long an identity is remembered. Default 24h.
    #[serde(default)]
    pub dedup_window: Option<Dur>,
}

/// A name a broker accepts for a queue, stream or consumer: not empty, no spaces or control
/// characters, at most 255 bytes.
fn check_name(what: &str, name: &str, path: &Path, diags: &mut Diags) {
    if name.is_empty() || name.len() > 255 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        diags.error(path, format!("invalid {what} `{name}`: expected 1–255 characters without spaces"));
    }
}

/// Checks that `name` is a connection of `kind` (`connections` are the integration's, with
/// their kinds).
pub(crate) fn check_connection(kind: &str, name: &str, connections: &[(&str, &str)], path: &Path, diags: &mut Diags) {
    match connections.iter().find(|(n, _)| *n == name) {
        Some((_, k)) if *k == kind => {}
        Some((_, k)) => {
            diags.error(path, format!("connection `{name}` is a `{k}` connection; this trigger needs an `{kind}` one"))
        }
        None => {
            let names: Vec<&str> = connections.iter().map(|(n, _)| *n).collect();
            crate::integration::check_connection_name(name, &names, path, diags);
        }
    }
}

impl AmqpTrigger {
    pub(crate) fn check(&self, connections: &[(&str, &str)], path: &Path, diags: &mut Diags) {
        check_connection("amqp", &self.connection, connections, &path.key("connection"), diags);
        check_name("queue", &self.queue, &path.key("queue"), diags);
        if self.prefetch == Some(0) {
            diags.error(&path.key("prefetch"), "prefetch must be at least 1");
        }
    }
}

impl NatsTrigger {
    pub(crate) fn check(&self, connections: &[(&str, &str)], path: &Path, diags: &mut Diags) {
        check_connection("nats", &self.connection, connections, &path.key("connection"), diags);
        check_name("stream", &self.stream, &path.key("stream"), diags);
        check_name("consumer", &self.consumer, &path.key("consumer"), diags);
        if self.stream.contains(['.', '*', '>']) {
            diags.error(&path.key("stream"), "a stream name cannot hold `.`, `*` or `>`");
        }
        if self.consumer.contains(['.', '*', '>']) {
            diags.error(&path.key("consumer"), "a consumer name cannot hold `.`, `*` or `>`");
        }
        if let Some(s) = &self.subject {
            check_name("subject", s, &path.key("subject"), diags);
        }
        if self.ack_wait.is_some_and(|d| d.0.as_secs() < 1) {
            diags.error(&path.key("ackWait"), "ackWait must be at least 1s");
        }
    }
}

impl MqttTrigger {
    pub(crate) fn check(&self, connections: &[(&str, &str)], path: &Path, diags: &mut Diags) {
        check_connection("mqtt", &self.connection, connections, &path.key("connection"), diags);
        if self.topic.is_empty() || self.topic.len() > 65535 || self.topic.contains('\0') {
            diags.error(&path.key("topic"), "expected a topic filter (`sensors/+/temp`, `orders/#`)");
        }
        // `#` only last, and alone in its level; `+` alone in its level.
        let levels: Vec<&str> = self.topic.split('/').collect();
        for (i, level) in levels.iter().enumerate() {
            let bad_hash = level.contains('#') && (*level != "#" || i + 1 != levels.len());
            let bad_plus = level.contains('+') && *level != "+";
            if bad_hash || bad_plus {
                diags.error(
                    &path.key("topic"),
                    format!("invalid topic filter `{}`: `+` and `#` fill a whole level, `#` only the last", self.topic),
                );
                break;
            }
        }
        if let Some(q) = self.qos
            && q > 1
        {
            diags.error(&path.key("qos"), format!("expected 0 or 1, found {q}"));
        }
    }
}
