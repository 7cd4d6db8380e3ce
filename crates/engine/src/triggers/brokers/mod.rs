//! Broker triggers: flows started by messages from RabbitMQ (AMQP 0-9-1), NATS JetStream or
//! MQTT. The leader runs one consumer per active flow with such a trigger (so a cluster
//! consumes each flow's messages on one node at a time, like schedules and polls), started,
//! replaced and stopped as the registry changes or leadership moves.
//!
//! The promise is the webhook's: a message is acknowledged only once its execution is
//! committed. A node that dies between receiving and committing never acknowledged it, so
//! the broker delivers it again; one that dies between committing and acknowledging gets it
//! again too, and the message's identity (`amqp:<queue>:<message-id>`,
//! `nats:<stream>:<sequence>`, or the trigger's `dedupKey`)
//! finds the execution already there, so it starts nothing new. Each kind is a module:
//! `amqp`, `nats`, `mqtt`; this one holds the spec, the consumers' supervisor and what they
//! share (`deliver`: one message to one committed execution).

mod amqp;
mod mqtt;
mod nats;

use crate::compile::CompiledFlow;
use crate::submit::{Submission, SubmitError, SubmitOptions};
use crate::waiters::Wait;
use crate::{Engine, Inner};
use base64::Engine as _;
use flowgate_model::trigger::{AmqpTrigger, MqttTrigger, NatsTrigger};
use flowgate_store::FlowKeyBuf;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a message's identity is remembered: longer than any broker keeps a message
/// delivered but unacknowledged.
const IDENTITY_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// The largest message a trigger takes (as the MQTT step sends at most); a larger one is
/// settled without an execution (AMQP: rejected to the dead-letter exchange, if any; NATS:
/// terminated; MQTT: acknowledged), and said so in the log and metrics.
pub(super) const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// The longest pause between attempts to reach a broker that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A compiled broker trigger: which connection, and what to consume.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerSpec {
    /// The integration's connection (its URL is resolved per deployment).
    pub connection: String,
    /// What is consumed.
    pub source: Source,
}

/// What a broker trigger consumes.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// An AMQP queue.
    Amqp {
        /// The queue.
        queue: String,
        /// Deliveries unacknowledged at most.
        prefetch: u16,
        /// Declare it (durable) when missing.
        declare: bool,
    },
    /// A durable JetStream consumer of a stream.
    Nats {
        /// The stream.
        stream: String,
        /// The durable consumer's name.
        consumer: String,
        /// Only messages on this subject.
        subject: Option<String>,
        /// How long an unacknowledged message waits before it is delivered again.
        ack_wait: Duration,
    },
    /// An MQTT topic filter.
    Mqtt {
        /// The topic filter.
        topic: String,
        /// 0 or 1.
        qos: u8,
    },
}

impl BrokerSpec {
    /// The trigger's kind (`amqp`, `nats`, `mqtt`).
    pub fn kind(&self) -> &'static str {
        match self.source {
            Source::Amqp { .. } => "amqp",
            Source::Nats { .. } => "nats",
            Source::Mqtt { .. } => "mqtt",
        }
    }

    /// What the API shows of it.
    pub fn describe(&self) -> Value {
        let mut v = match &self.source {
            Source::Amqp { queue, prefetch, declare } => {
                json!({ "queue": queue, "prefetch": prefetch, "declare": declare })
            }
            Source::Nats { stream, consumer, subject, ack_wait } => {
                json!({ "stream": stream, "consumer": consumer, "subject": subject, "ackWaitSeconds": ack_wait.as_secs() })
            }
            Source::Mqtt { topic, qos } => json!({ "topic": topic, "qos": qos }),
        };
        v["kind"] = json!(self.kind());
        v["connection"] = json!(self.connection);
        v
    }
}

pub(crate) fn compile_amqp(t: &AmqpTrigger) -> BrokerSpec {
    BrokerSpec {
        connection: t.connection.clone(),
        source: Source::Amqp { queue: t.queue.clone(), prefetch: t.prefetch.unwrap_or(64).max(1), declare: t.declare },
    }
}

pub(crate) fn compile_nats(t: &NatsTrigger) -> BrokerSpec {
    BrokerSpec {
        connection: t.connection.clone(),
        source: Source::Nats {
            stream: t.stream.clone(),
            consumer: t.consumer.clone(),
            subject: t.subject.clone(),
            ack_wait: t.ack_wait.map_or(Duration::from_secs(30), |d| d.0),
        },
    }
}

pub(crate) fn compile_mqtt(t: &MqttTrigger) -> BrokerSpec {
    BrokerSpec {
        connection: t.connection.clone(),
        source: Source::Mqtt { topic: t.topic.clone(), qos: t.qos.unwrap_or(1) },
    }
}

/// A consumer running for one flow.
struct Running {
    flow: Arc<CompiledFlow>,
    stop: CancellationToken,
}

/// The leader's supervisor: one consumer per active flow with a broker trigger; none on a
/// node that does not lead.
pub(crate) async fn consumers_loop(inner: Arc<Inner>) {
    let mut running: HashMap<FlowKeyBuf, Running> = HashMap::new();
    let mut seen = u64::MAX;
    loop {
        if inner.stopping.load(Ordering::Relaxed) || inner.hard_stop.is_cancelled() {
            break;
        }
        if !inner.leading.load(Ordering::Acquire) {
            for (_, r) in running.drain() {
                r.stop.cancel();
            }
            seen = u64::MAX;
        } else if inner.registry.generation() != seen {
            seen = inner.registry.generation();
            let mut wanted: HashMap<FlowKeyBuf, Arc<CompiledFlow>> = HashMap::new();
            for ci in inner.registry.current_integrations() {
                for f in ci.flows.values() {
                    if f.trigger.broker().is_some() && inner.registry.is_active(f) {
                        wanted.insert(f.key().into(), f.clone());
                    }
                }
            }
            // A flow gone, or built again (a new version, deployment or connection): its
            // consumer stops; a new one starts with what is wanted now.
            running.retain(|key, r| {
                let keep = wanted.get(key).is_some_and(|f| Arc::ptr_eq(f, &r.flow));
                if !keep {
                    r.stop.cancel();
                }
                keep
            });
            for (key, flow) in wanted {
                if running.contains_key(&key) {
                    continue;
                }
                let stop = inner.hard_stop.child_token();
                tokio::spawn(consume(Engine { inner: inner.clone() }, flow.clone(), stop.clone()));
                running.insert(key, Running { flow, stop });
            }
        }
        tokio::select! {
            _ = inner.hard_stop.cancelled() => break,
            _ = tokio::time::sleep(inner.settings.trigger_tick) => {}
        }
    }
    for (_, r) in running.drain() {
        r.stop.cancel();
    }
}

/// Runs a flow's consumer until `stop`: connects, consumes, and after a failure connects
/// again with a growing pause.
async fn consume(engine: Engine, flow: Arc<CompiledFlow>, stop: CancellationToken) {
    let Some(spec) = flow.trigger.broker().cloned() else { return };
    let mut pause = Duration::from_millis(200);
    loop {
        let url = match flow.connections.get(&spec.connection).map(|c| &**c) {
            Some(crate::connections::ConnectionSpec::Fixed(c)) => c.extras.clone(),
            _ => {
                tracing::warn!(flow = %flow.slug, connection = %spec.connection, "A broker trigger's connection is not usable.");
                return;
            }
        };
        let consumer = Consumer { engine: &engine, flow: &flow, extras: &url, stop: &stop };
        let ended = match &spec.source {
            Source::Amqp { queue, prefetch, declare } => amqp::consume(&consumer, queue, *prefetch, *declare).await,
            Source::Nats { stream, consumer: name, subject, ack_wait } => {
                nats::consume(&consumer, stream, name, subject.as_deref(), *ack_wait).await
            }
            Source::Mqtt { topic, qos } => mqtt::consume(&consumer, topic, *qos).await,
        };
        if stop.is_cancelled() {
            return;
        }
        match ended {
            // It consumed for a while before it failed: start again quickly.
            Ok(()) => pause = Duration::from_millis(200),
            Err(e) => {
                metrics::counter!("flowgate_broker_errors_total", "kind" => spec.kind()).increment(1);
                tracing::warn!(flow = %flow.slug, kind = spec.kind(), error = %e, "A broker trigger lost its broker; connecting again.");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}

/// What a kind's consumer works with.
pub(super) struct Consumer<'a> {
    pub engine: &'a Engine,
    pub flow: &'a Arc<CompiledFlow>,
    /// The connection's resolved settings (`url`, `clientId`).
    pub extras: &'a Value,
    pub stop: &'a CancellationToken,
}

/// What became of a message handed to [`Consumer::deliver`].
pub(super) enum Delivered {
    /// Committed (or found committed before): acknowledge it.
    Committed,
    /// The event can never be accepted (its delivery key cannot be computed): settle it
    /// without an execution, so it does not come back forever.
    Refused,
    /// The consumer is stopping: leave it unacknowledged, to be delivered again.
    Stopped,
}

impl Consumer<'_> {
    /// Whether a message of `len` bytes is over [`MAX_MESSAGE_BYTES`] (and said so).
    pub fn too_large(&self, len: usize) -> bool {
        if len <= MAX_MESSAGE_BYTES {
            return false;
        }
        metrics::counter!("flowgate_broker_messages_refused_total", "kind" => self.flow.trigger.kind()).increment(1);
        tracing::warn!(flow = %self.flow.slug, bytes = len, limit = MAX_MESSAGE_BYTES, "A message too large to run was refused.");
        true
    }

    /// The connection's URL.
    pub fn url(&self) -> Result<&str, String> {
        self.extras["url"].as_str().ok_or_else(|| "the connection has no URL".to_owned())
    }

    /// Commits `trigger` as an execution (with `identity`, when the message has one), waiting
    /// out backpressure and a store that fails: only then may the message be acknowledged.
    pub async fn deliver(&self, trigger: Value, identity: Option<String>) -> Delivered {
        let mut pause = Duration::from_millis(50);
        loop {
            let submitted = self
                .engine
                .submit(Submission {
                    flow: self.flow.clone(),
                    trigger: trigger.clone(),
                    kind: self.flow.trigger.kind(),
                    auth_label: None,
                    replay_of: None,
                    wait: Wait::No,
                    options: SubmitOptions {
                        // The flow's `dedupKey`, when it has one, names the message instead.
                        identity: identity
                            .clone()
                            .filter(|_| self.flow.policy.dedup.is_none())
                            .map(|i| (i, IDENTITY_WINDOW)),
                        ..Default::default()
                    },
                })
                .await;
            match submitted {
                Ok(s) => {
                    metrics::counter!("flowgate_broker_messages_total", "kind" => self.flow.trigger.kind(), "duplicate" => if s.duplicate { "true" } else { "false" }).increment(1);
                    return Delivered::Committed;
                }
                Err(SubmitError::Expression(m)) => {
                    tracing::warn!(flow = %self.flow.slug, error = %m, "A message was refused: its delivery key could not be computed.");
                    return Delivered::Refused;
                }
                Err(SubmitError::ShuttingDown) => return Delivered::Stopped,
                Err(e) => {
                    // Backpressure or the store: hold the message (unacknowledged: the broker
                    // sends no more than the prefetch meanwhile) and try again.
                    tracing::debug!(flow = %self.flow.slug, error = %e, "A message waits to be committed.");
                    tokio::select! {
                        _ = self.stop.cancelled() => return Delivered::Stopped,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// A message body as `$trigger.body`: JSON when it parses, else text when it is UTF-8,
/// else base64 (with `encoding` saying which).
pub(super) fn body_of(data: &[u8]) -> (Value, &'static str) {
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        return (v, "json");
    }
    match std::str::from_utf8(data) {
        Ok(text) => (Value::String(text.to_owned()), "text"),
        Err(_) => (Value::String(base64::engine::general_purpose::STANDARD.encode(data)), "base64"),
    }
}
