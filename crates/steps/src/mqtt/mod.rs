//! `mqtt`: publishes one message to an MQTT broker (MQTT 3.1.1) through an `mqtt`
//! connection. With QoS 1 (the default) the step succeeds only once the broker answers the
//! publish with its `PUBACK`; QoS 0 succeeds once the message is handed to the connection.
//!
//! ```yaml
//! connections:
//!   iot: { mqtt: { url: "{{ $config.mqttUrl }}", clientId: plant-7 } }   # mqtt://user:password@host:1883
//! flows:
//!   - flow: setpoints
//!     steps:
//!       - id: publish
//!         mqtt:
//!           connection: iot                # default: the flow's mqtt connection
//!           topic: "plants/{{ .plant }}/setpoint"
//!           qos: 1                         # 0 or 1 (default 1)
//!           retain: true                   # default false
//!           body: { celsius: "{{ .celsius }}" }   # default: the step's input
//! ```
//!
//! `body` is a template: a JSON value is sent as JSON, a string as its text (MQTT 3.1.1 has
//! no content type or headers). `topic` may be a template; it must not hold wildcards (`+`,
//! `#`). QoS 1 is at least once: an attempt retried after a lost `PUBACK` may deliver the
//! message twice, as MQTT itself would. QoS 2 is not offered.
//!
//! Output: `{topic, qos, retain}`.
//!
//! Failures: the broker refused the credentials or the client id (`mqtt_access_refused`),
//! the message is over 16 MB (`mqtt_too_large`), a bad topic (`mqtt_message`): not retried. A
//! broker that cannot be reached, a lost connection or no `PUBACK` within the step's timeout
//! (`mqtt_unavailable`): retried. A broker host the server's outbound policy refuses is
//! `mqtt_refused`. Messages never show the URL's password. One connection per URL and
//! client id is kept on each node (`client.rs`).

pub mod client;
#[cfg(test)]
mod tests;

pub use client::probe;

use crate::{Outcome, Step, StepCx, StepError, util};
use async_trait::async_trait;
use flowgate_expr::Template;
use flowgate_model::{Diags, Dur, Path};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The connection kinds an `mqtt` step uses.
const KINDS: &[&str] = &["mqtt"];
/// The largest message a step publishes, in bytes.
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// An `mqtt` step: one message, published at QoS 0 or 1.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct MqttConfig {
    /// The `mqtt` connection (default: the flow's).
    #[serde(default)]
    pub connection: Option<String>,
    /// The topic; template allowed. No wildcards (`+`, `#`).
    pub topic: String,
    /// 0 (at most once) or 1 (at least once: waits for the broker's `PUBACK`). Default 1.
    #[serde(default = "one")]
    pub qos: u8,
    /// The broker keeps the message as the topic's last value for new subscribers. Default
    /// false.
    #[serde(default)]
    pub retain: bool,
    /// The message: a template; a JSON value is sent as JSON, a string as text. Default: the
    /// step's input.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub body: Option<Value>,
    /// Longest one attempt may take, `PUBACK` included. Default 30s.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// A rate limit of the integration (`limits:`) each attempt takes a token from.
    #[serde(default)]
    pub limit: Option<String>,
}

fn one() -> u8 {
    1
}

impl crate::Kind for MqttConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        flowgate_model::decode::decode(value, path, diags)
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<Self>()
    }

    fn compile(&self, cx: &crate::PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        let connection = cx.connection_for(KINDS, self.connection.as_deref(), path, diags);
        let mut ok = true;
        let qos = match self.qos {
            0 => rumqttc::QoS::AtMostOnce,
            1 => rumqttc::QoS::AtLeastOnce,
            n => {
                let why = if n == 2 { "QoS 2 is not supported" } else { "no such QoS" };
                diags.error(&path.key("qos"), format!("`qos` is 0 or 1 ({why})"));
                ok = false;
                rumqttc::QoS::AtLeastOnce
            }
        };
        if let Err(m) = check_topic(&self.topic) {
            diags.error(&path.key("topic"), m);
            ok = false;
        }
        let mut message = Map::new();
        message.insert("topic".into(), Value::String(self.topic.clone()));
        message.insert("body".into(), self.body.clone().unwrap_or_else(|| Value::String("{{ . }}".into())));
        let message = util::template(&Value::Object(message), path, diags);
        let (connection, message) = (connection?, message?);
        if !ok {
            return None;
        }
        Some(Box::new(MqttStep { connection, message, qos, retain: self.retain }))
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout.map(|d| d.0)
    }

    fn limit(&self) -> Option<&String> {
        self.limit.as_ref()
    }
}

/// A topic one publishes to: 1 to 65,535 bytes, no wildcard (`+`, `#`), no NUL. A template is
/// checked once evaluated.
fn check_topic(topic: &str) -> Result<(), String> {
    if topic.contains("{{") {
        return Ok(());
    }
    let shown: String = topic.chars().take(80).collect();
    if topic.is_empty() {
        return Err("the topic is empty".into());
    }
    if topic.len() > 65_535 {
        return Err(format!("the topic is {} bytes long; MQTT allows at most 65535", topic.len()));
    }
    if topic.contains(['+', '#']) {
        return Err(format!("invalid topic `{shown}`: a message is published to one topic, without wildcards (+, #)"));
    }
    if topic.contains('\0') {
        return Err("the topic holds a NUL character".into());
    }
    Ok(())
}

/// An `mqtt` step, compiled.
struct MqttStep {
    connection: String,
    /// `{topic, body}`, evaluated per attempt.
    message: Arc<Template>,
    qos: rumqttc::QoS,
    retain: bool,
}

fn invalid(message: &str) -> StepError {
    StepError::fatal("mqtt_message", message.to_owned())
}

#[async_trait]
impl Step for MqttStep {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        let Value::Object(mut m) = cx.evaluator.eval(&self.message, input, &cx.scope).await? else {
            return Err(invalid("the message did not evaluate to an object"));
        };
        let topic = match m.remove("topic") {
            Some(Value::String(s)) => s,
            other => {
                let shown: String = other.unwrap_or(Value::Null).to_string().chars().take(80).collect();
                return Err(invalid(&format!("`topic` gave {shown}, not a text")));
            }
        };
        check_topic(&topic).map_err(|e| invalid(&e))?;
        let payload = match m.remove("body").unwrap_or(Value::Null) {
            Value::String(s) => s.into_bytes(),
            other => other.to_string().into_bytes(),
        };
        if payload.len() > MAX_PAYLOAD {
            return Err(StepError::fatal(
                "mqtt_too_large",
                format!("the message is {} bytes; a step publishes at most {MAX_PAYLOAD}", payload.len()),
            ));
        }
        let credentials = cx.connections.credentials(&self.connection).await?;
        let (url, client_id) = client::url_of(&credentials.extras)?;
        let broker = client::broker(url, client_id, cx.outbound, cx.timeout).await?;
        broker.publish(topic.clone(), self.qos, self.retain, payload).await?;
        Ok(Outcome::Output(json!({
            "topic": topic,
            "qos": self.qos as u8,
            "retain": self.retain,
        })))
    }

    fn side_effects(&self) -> bool {
        true
    }
}
