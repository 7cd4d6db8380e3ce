//! `nats`: publishes one message to a NATS JetStream stream through a `nats` connection and
//! waits for the stream's acknowledgement (its `PubAck`): the step succeeds only once the
//! message is stored.
//!
//! ```yaml
//! connections:
//!   js: { nats: { url: "{{ $config.natsUrl }}" } }       # nats://user:password@host:4222
//! flows:
//!   - flow: orders
//!     steps:
//!       - id: publish
//!         nats:
//!           connection: js                 # default: the flow's nats connection
//!           subject: "orders.{{ .region }}.created"
//!           body: { id: "{{ .id }}" }      # default: the step's input
//!           headers: { X-Tenant: "{{ $trigger.headers.x-tenant }}" }
//! ```
//!
//! `body` is a template: a JSON value is sent as JSON, a string as its text (the
//! `Content-Type` header says which). `headers` are templates (non-text values go as JSON
//! text). `Nats-Msg-Id` is set to the step's idempotency key (`<execution>:<step>`, the same
//! on every attempt and resume), so the stream drops a re-sent message within its duplicate
//! window (the output's `duplicate` says so); a `Nats-Msg-Id` in `headers` replaces it.
//!
//! Output: `{subject, stream, sequence, duplicate}`.
//!
//! Failures: no stream captures the subject (`nats_no_stream`), the message is bigger than
//! the server takes (`nats_too_large`), the server refused the credentials
//! (`nats_access_refused`) or the publish (`nats_error`): not retried. The server cannot be
//! reached or does not acknowledge in time (`nats_unavailable`, `nats_timeout`): retried. A
//! host the server's outbound policy refuses is `nats_refused`. Messages never show the URL's
//! credentials. Clients are kept per URL on each node (`client.rs`).

pub mod client;
#[cfg(test)]
mod tests;

pub use client::probe;

use crate::{Outcome, Step, StepCx, StepError, util};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::{HeaderMap, HeaderName};
use async_trait::async_trait;
use flowgate_expr::Template;
use flowgate_model::{Diags, Dur, Path};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The connection kinds a `nats` step uses.
const KINDS: &[&str] = &["nats"];
/// The header JetStream deduplicates by.
const MSG_ID: &str = "Nats-Msg-Id";

/// A `nats` step: one message, published to JetStream with an acknowledgement.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct NatsConfig {
    /// The `nats` connection (default: the flow's).
    #[serde(default)]
    pub connection: Option<String>,
    /// The subject (a stream must capture it); template allowed. No wildcards.
    pub subject: String,
    /// The message: a template; a JSON value is sent as JSON, a string as text. Default: the
    /// step's input.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub body: Option<Value>,
    /// Message headers, templates allowed. `Nats-Msg-Id` defaults to the step's
    /// idempotency key.
    #[serde(default)]
    #[schemars(with = "Option<IndexMap<String, Value>>")]
    pub headers: IndexMap<String, Value>,
    /// Longest one attempt may take, acknowledgement included. Default 30s.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// A rate limit of the integration (`limits:`) each attempt takes a token from.
    #[serde(default)]
    pub limit: Option<String>,
}

impl crate::Kind for NatsConfig {
    fn decode(value: &Value, path: &Path, diags: &mut Diags) -> Option<Self> {
        flowgate_model::decode::decode(value, path, diags)
    }

    fn schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<Self>()
    }

    fn compile(&self, cx: &crate::PlanCx<'_>, path: &Path, diags: &mut Diags) -> Option<Box<dyn Step>> {
        let connection = cx.connection_for(KINDS, self.connection.as_deref(), path, diags);
        let mut ok = true;
        if let Err(m) = check_subject(&self.subject) {
            diags.error(&path.key("subject"), m);
            ok = false;
        }
        for name in self.headers.keys() {
            if name.parse::<HeaderName>().is_err() || name.is_empty() {
                diags.error(
                    &path.key("headers").key(name.clone()),
                    "invalid header name: printable ASCII without spaces or `:`",
                );
                ok = false;
            }
        }
        // One template for every evaluated field, laid out as written (problems located).
        let mut message = Map::new();
        message.insert("subject".into(), Value::String(self.subject.clone()));
        message.insert("body".into(), self.body.clone().unwrap_or_else(|| Value::String("{{ . }}".into())));
        message.insert("headers".into(), Value::Object(self.headers.clone().into_iter().collect()));
        let message = util::template(&Value::Object(message), path, diags);
        let (connection, message) = (connection?, message?);
        if !ok {
            return None;
        }
        Some(Box::new(NatsStep { connection, message }))
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout.map(|d| d.0)
    }

    fn limit(&self) -> Option<&String> {
        self.limit.as_ref()
    }
}

/// A subject one publishes to: dot-separated tokens, none empty, no wildcard (`*`, `>`) and
/// no white space. A template is checked once evaluated.
fn check_subject(subject: &str) -> Result<(), String> {
    if subject.contains("{{") {
        return Ok(());
    }
    let shown: String = subject.chars().take(80).collect();
    if subject.is_empty() {
        return Err("the subject is empty".into());
    }
    if subject.split('.').any(str::is_empty) || subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("invalid subject `{shown}`: dot-separated tokens, none empty, no spaces"));
    }
    if subject.split('.').any(|t| t == "*" || t == ">") {
        return Err(format!("invalid subject `{shown}`: a message is published to one subject, without wildcards"));
    }
    Ok(())
}

/// A `nats` step, compiled.
struct NatsStep {
    connection: String,
    /// `{subject, body, headers}`, evaluated per attempt.
    message: Arc<Template>,
}

fn invalid(message: &str) -> StepError {
    StepError::fatal("nats_message", message.to_owned())
}

#[async_trait]
impl Step for NatsStep {
    async fn run<'s>(&'s self, input: &Value, cx: &mut StepCx<'_>) -> Result<Outcome<'s>, StepError> {
        let Value::Object(mut m) = cx.evaluator.eval(&self.message, input, &cx.scope).await? else {
            return Err(invalid("the message did not evaluate to an object"));
        };
        let subject = match m.remove("subject") {
            Some(Value::String(s)) => s,
            other => {
                let shown: String = other.unwrap_or(Value::Null).to_string().chars().take(80).collect();
                return Err(invalid(&format!("`subject` gave {shown}, not a text")));
            }
        };
        check_subject(&subject).map_err(|e| invalid(&e))?;
        let (payload, content_type) = match m.remove("body").unwrap_or(Value::Null) {
            Value::String(s) => (s.into_bytes(), "text/plain"),
            other => (other.to_string().into_bytes(), "application/json"),
        };
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", content_type);
        if !cx.idempotency_key.is_empty() {
            headers.insert(MSG_ID, cx.idempotency_key);
        }
        if let Some(Value::Object(h)) = m.remove("headers") {
            for (name, value) in h {
                let name: HeaderName = name.parse().map_err(|_| invalid(&format!("invalid header name `{name}`")))?;
                let value = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                headers.insert(name, value);
            }
        }

        let credentials = cx.connections.credentials(&self.connection).await?;
        let url = client::url_of(&credentials.extras)?;
        let mut js = client::context(url, cx.outbound, cx.timeout).await?;
        js.set_timeout(cx.timeout);
        let ack = async { js.publish_with_headers(subject.clone(), headers, payload.into()).await?.await };
        let ack = ack.await.map_err(|e| publish_error(&e, &subject, url))?;
        Ok(Outcome::Output(json!({
            "subject": subject,
            "stream": ack.stream,
            "sequence": ack.sequence,
            "duplicate": ack.duplicate,
        })))
    }

    fn side_effects(&self) -> bool {
        true
    }
}

/// A failed publish as a step error; a client whose connection broke is dropped (`url`'s
/// client) so the next attempt connects anew.
fn publish_error(e: &PublishError, subject: &str, url: &str) -> StepError {
    let said = crate::broker::scrub(&e.to_string(), url);
    match e.kind() {
        PublishErrorKind::StreamNotFound => StepError::fatal(
            "nats_no_stream",
            format!(
                "no JetStream stream captures subject `{subject}`: add the subject to a stream (`nats stream add`) or publish to one it captures"
            ),
        ),
        PublishErrorKind::MaxPayloadExceeded => {
            StepError::fatal("nats_too_large", format!("NATS: the message is bigger than the server takes ({said})"))
        }
        PublishErrorKind::TimedOut => {
            client::forget(url);
            StepError::retryable("nats_timeout", "NATS: the stream did not acknowledge the message in time")
        }
        PublishErrorKind::BrokenPipe | PublishErrorKind::MaxAckPending => {
            client::forget(url);
            StepError::retryable("nats_unavailable", format!("NATS: {said}"))
        }
        // The stream's own refusal (limits, a wrong expected sequence): another attempt gets
        // the same answer. Anything else (the client's channel closed) is the connection.
        _ if jetstream_refusal(e).is_some() => {
            let code = jetstream_refusal(e).map_or(0, |j| j.code());
            StepError {
                details: Some(json!({ "code": code })),
                ..StepError::fatal("nats_error", format!("NATS: the stream refused the message: {said}"))
            }
        }
        _ => {
            client::forget(url);
            StepError::retryable("nats_unavailable", format!("NATS: {said}"))
        }
    }
}

/// The JetStream error a failed publish carries, if the server answered with one.
fn jetstream_refusal(e: &PublishError) -> Option<&async_nats::jetstream::Error> {
    std::error::Error::source(e).and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
}
