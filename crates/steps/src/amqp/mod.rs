//! `amqp`: publishes one message to an AMQP 0-9-1 broker (RabbitMQ) through an `amqp`
//! connection, with publisher confirms: the step succeeds only once the broker has taken
//! the message (its `basic.ack`).
//!
//! ```yaml
//! connections:
//!   mq: { amqp: { url: "{{ $config.amqpUrl }}" } }     # amqp://user:password@host:5672/vhost
//! flows:
//!   - flow: orders
//!     steps:
//!       - id: publish
//!         amqp:
//!           connection: mq                # default: the flow's amqp connection
//!           exchange: orders              # default "": the default exchange (routingKey = queue)
//!           routingKey: "order.{{ .status }}"
//!           body: { id: "{{ .id }}", total: "{{ .total }}" }   # default: the step's input
//!           headers: { x-tenant: "{{ $trigger.headers.x-tenant }}" }
//!           mandatory: true               # unroutable → fails rather than vanishing
//! ```
//!
//! `body` is a template: a JSON value is sent as JSON (`application/json`), a string as its
//! text (`text/plain`); `contentType` overrides the type. `headers` are templates too
//! (strings, numbers, booleans and null keep their AMQP types; lists and objects are sent as
//! JSON text). `persistent` (default true) sets delivery mode 2, so a durable queue keeps the
//! message across a broker restart. `messageId` defaults to the step's idempotency key
//! (`<execution>:<step>`), the same on every attempt and resume, so consumers can drop a
//! re-sent message. `exchange`, `routingKey` and `messageId` may be templates.
//!
//! Output: `{exchange, routingKey, messageId, confirmed: true}`.
//!
//! Failures: the broker's refusal of the publish — no such exchange (`amqp_not_found`),
//! access refused (`amqp_access_refused`), an unroutable message with `mandatory: true`
//! (`amqp_unroutable`), anything else it refused (`amqp_error`) — is not retried; a `nack`
//! (`amqp_nacked`), a connection that fails or is lost (`amqp_unavailable`) and a broker that
//! does not confirm within the step's timeout are retried. A broker host the server's
//! outbound policy refuses is `amqp_refused`. Messages never show the URL's password.
//! Connections are kept per URL on each node (`client.rs`), with a few channels each.

pub mod client;
#[cfg(test)]
mod tests;

pub use client::probe;

use crate::{Outcome, Step, StepCx, StepError, util};
use async_trait::async_trait;
use flowgate_expr::Template;
use flowgate_model::{Diags, Dur, Path};
use indexmap::IndexMap;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The connection kinds an `amqp` step uses.
const KINDS: &[&str] = &["amqp"];
/// Longest AMQP short string (exchange, routing key, message id, header name), in bytes.
const SHORT: usize = 255;

/// An `amqp` step: one message, published with a confirm.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct AmqpConfig {
    /// The `amqp` connection (default: the flow's).
    #[serde(default)]
    pub connection: Option<String>,
    /// The exchange to publish to; template allowed. Default `""`, the default exchange,
    /// which routes to the queue named by `routingKey`.
    #[serde(default)]
    pub exchange: String,
    /// The routing key; template allowed. Default `""`.
    #[serde(default)]
    pub routing_key: String,
    /// The message: a template; a JSON value is sent as JSON, a string as text. Default: the
    /// step's input.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub body: Option<Value>,
    /// Message headers (AMQP header table), templates allowed.
    #[serde(default)]
    #[schemars(with = "Option<IndexMap<String, Value>>")]
    pub headers: IndexMap<String, Value>,
    /// Delivery mode 2 (kept on disk by durable queues). Default true.
    #[serde(default = "yes")]
    pub persistent: bool,
    /// The content type. Default: `application/json`, or `text/plain` for a text body.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The message id; template allowed. Default: the step's idempotency key
    /// (`<execution>:<step>`), stable across attempts so consumers can deduplicate.
    #[serde(default)]
    pub message_id: Option<String>,
    /// Fail (`amqp_unroutable`) when no queue receives the message, rather than let the
    /// broker drop it. Default false.
    #[serde(default)]
    pub mandatory: bool,
    /// Longest one attempt may take, confirm included. Default 30s.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// A rate limit of the integration (`limits:`) each attempt takes a token from.
    #[serde(default)]
    pub limit: Option<String>,
}

fn yes() -> bool {
    true
}

impl crate::Kind for AmqpConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        flowgate_model::decode::decode(value, path, diags)
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<Self>()
    }

    fn compile(&self, cx: &crate::PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        let connection = cx.connection_for(KINDS, self.connection.as_deref(), path, diags);
        let mut ok = true;
        // Literal names are checked now; templated ones when they are evaluated.
        if let Err(m) = check_exchange(&self.exchange) {
            diags.error(&path.key("exchange"), m);
            ok = false;
        }
        for (key, value) in [("routingKey", Some(&self.routing_key)), ("messageId", self.message_id.as_ref())] {
            if let Some(v) = value
                && let Err(m) = check_short(key, v)
            {
                diags.error(&path.key(key), m);
                ok = false;
            }
        }
        for name in self.headers.keys() {
            if name.is_empty() || name.len() > SHORT {
                diags.error(&path.key("headers").key(name.clone()), "a header name must be 1 to 255 bytes");
                ok = false;
            }
        }
        if let Some(t) = &self.content_type
            && (t.trim().is_empty() || t.len() > SHORT)
        {
            diags.error(&path.key("contentType"), "the content type must be 1 to 255 bytes");
            ok = false;
        }
        // One template for every evaluated field, laid out as written, so a bad expression
        // is located at its own key.
        let mut message = Map::new();
        message.insert("exchange".into(), Value::String(self.exchange.clone()));
        message.insert("routingKey".into(), Value::String(self.routing_key.clone()));
        message.insert("body".into(), self.body.clone().unwrap_or_else(|| Value::String("{{ . }}".into())));
        message.insert("headers".into(), Value::Object(self.headers.clone().into_iter().collect()));
        if let Some(id) = &self.message_id {
            message.insert("messageId".into(), Value::String(id.clone()));
        }
        let message = util::template(&Value::Object(message), path, diags);
        let (connection, message) = (connection?, message?);
        if !ok {
            return None;
        }
        Some(Box::new(AmqpStep {
            connection,
            message,
            persistent: self.persistent,
            content_type: self.content_type.clone(),
            mandatory: self.mandatory,
        }))
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout.map(|d| d.0)
    }

    fn limit(&self) -> Option<&String> {
        self.limit.as_ref()
    }
}

/// An exchange name as RabbitMQ takes it: at most 255 bytes of letters, digits, `-`, `_`,
/// `.` and `:` (empty: the default exchange). A template is checked once evaluated.
fn check_exchange(name: &str) -> Result<(), String> {
    if name.contains("{{") {
        return Ok(());
    }
    let ok = name.len() <= SHORT && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(())
    } else {
        let shown: String = name.chars().take(60).collect();
        Err(format!(
            "invalid exchange name `{shown}`: at most 255 letters, digits, `-`, `_`, `.` and `:` (\"\" is the default exchange)"
        ))
    }
}

/// A routing key or message id: at most 255 bytes (an AMQP short string).
fn check_short(key: &str, value: &str) -> Result<(), String> {
    if value.contains("{{") || value.len() <= SHORT {
        Ok(())
    } else {
        Err(format!("`{key}` is {} bytes long; AMQP allows at most 255", value.len()))
    }
}

/// An `amqp` step, compiled.
struct AmqpStep {
    connection: String,
    /// `{exchange, routingKey, body, headers, messageId?}`, evaluated per attempt.
    message: Arc<Template>,
    persistent: bool,
    content_type: Option<String>,
    mandatory: bool,
}

/// The message of one attempt, evaluated and checked.
struct Message {
    exchange: String,
    routing_key: String,
    message_id: String,
    payload: Vec<u8>,
    properties: BasicProperties,
}

impl AmqpStep {
    fn message(&self, v: Value, idempotency_key: &str) -> Result<Message, StepError> {
        let Value::Object(mut m) = v else { return Err(invalid("the message did not evaluate to an object")) };
        let exchange = text(m.remove("exchange"), "exchange")?;
        check_exchange(&exchange).map_err(|e| invalid(&e))?;
        let routing_key = text(m.remove("routingKey"), "routingKey")?;
        check_short("routingKey", &routing_key).map_err(|e| invalid(&e))?;
        let message_id = match m.remove("messageId") {
            Some(v) => text(Some(v), "messageId")?,
            None => idempotency_key.to_owned(),
        };
        check_short("messageId", &message_id).map_err(|e| invalid(&e))?;
        let (payload, default_type) = match m.remove("body").unwrap_or(Value::Null) {
            Value::String(s) => (s.into_bytes(), "text/plain"),
            other => (other.to_string().into_bytes(), "application/json"),
        };
        let mut headers = FieldTable::default();
        if let Some(Value::Object(h)) = m.remove("headers") {
            for (name, value) in h {
                headers.insert(ShortString::from(name), header_value(value));
            }
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut properties = BasicProperties::default()
            .with_content_type(ShortString::from(self.content_type.as_deref().unwrap_or(default_type)))
            .with_delivery_mode(if self.persistent { 2 } else { 1 })
            .with_headers(headers)
            .with_timestamp(now)
            .with_app_id(ShortString::from("flowgate"));
        if !message_id.is_empty() {
            properties = properties.with_message_id(ShortString::from(message_id.clone()));
        }
        Ok(Message { exchange, routing_key, message_id, payload, properties })
    }
}

/// A header's AMQP value: JSON scalars keep their type, lists and objects go as JSON text.
fn header_value(v: Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => AMQPValue::LongString(s.into()),
        other => AMQPValue::LongString(other.to_string().into()),
    }
}

/// A field that must be text: strings as they are, numbers as written.
fn text(v: Option<Value>, key: &str) -> Result<String, StepError> {
    match v {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => {
            let shown: String = other.to_string().chars().take(80).collect();
            Err(invalid(&format!("`{key}` gave {shown}, not a text")))
        }
        None => Ok(String::new()),
    }
}

fn invalid(message: &str) -> StepError {
    StepError::fatal("amqp_message", message.to_owned())
}

#[async_trait]
impl Step for AmqpStep {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        let evaluated = cx.evaluator.eval(&self.message, input, &cx.scope).await?;
        let msg = self.message(evaluated, cx.idempotency_key)?;
        let credentials = cx.connections.credentials(&self.connection).await?;
        let url = client::url_of(&credentials.extras)?;
        let lease = client::channel(url, cx.outbound, cx.timeout).await?;
        let options = BasicPublishOptions { mandatory: self.mandatory, immediate: false };
        let published = lease
            .channel()
            .basic_publish(
                ShortString::from(msg.exchange.clone()),
                ShortString::from(msg.routing_key.clone()),
                options,
                &msg.payload,
                msg.properties,
            )
            .await;
        let confirm = published.map_err(|e| lease.failed(e))?;
        let confirmation = confirm.await.map_err(|e| lease.failed(e))?;
        match confirmation {
            Confirmation::Ack(None) => lease.finish(),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                lease.finish();
                return Err(StepError {
                    details: Some(
                        json!({ "replyCode": returned.reply_code, "replyText": returned.reply_text.as_str() }),
                    ),
                    ..StepError::fatal(
                        "amqp_unroutable",
                        format!(
                            "no queue is bound to exchange `{}` for routing key `{}`: the broker returned the message ({} {})",
                            shown_exchange(&msg.exchange),
                            msg.routing_key,
                            returned.reply_code,
                            returned.reply_text
                        ),
                    )
                });
            }
            Confirmation::Nack(None) => {
                lease.finish();
                return Err(StepError::retryable(
                    "amqp_nacked",
                    "the broker could not take the message (it answered the publish with a nack)",
                ));
            }
            Confirmation::NotRequested => {
                return Err(StepError::retryable("amqp_unavailable", "the broker's confirm was not requested"));
            }
        }
        Ok(Outcome::Output(json!({
            "exchange": msg.exchange,
            "routingKey": msg.routing_key,
            "messageId": msg.message_id,
            "confirmed": true,
        })))
    }

    fn side_effects(&self) -> bool {
        true
    }
}

/// An exchange as messages name it (the default exchange has an empty name).
fn shown_exchange(name: &str) -> &str {
    if name.is_empty() { "(the default exchange)" } else { name }
}
